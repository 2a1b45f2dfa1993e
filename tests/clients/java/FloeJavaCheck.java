// End-to-end check of Floe with the Apache Kafka Java client (kafka-clients 3.9.1).
//
// Usage: java -cp 'classes:libs/*' FloeJavaCheck BOOTSTRAP
//
// 1. A KafkaProducer with default settings (idempotence on, acks=all) sends keyed records
//    with headers to a 2-partition topic and remembers where each one was acknowledged.
// 2. A KafkaConsumer without a group (assign + seekToBeginning, no commits) reads them all
//    back; every record must be at its acknowledged partition and offset with the same key,
//    value and headers, and each partition must hold exactly offsets 0..n-1.
// 3. AdminClient deleteRecords on partition 0 (the low watermark moves to the middle, listOffsets
//    earliest and a consumer from the beginning start there) and describeLogDirs (prints
//    "LOGDIR <topic>-<partition> <size>" for the test to compare with the files).
// 4. A keyless record to a cleanup.policy=compact topic fails with InvalidRecordException.
// 5. AdminClient: createTopics with a topic config, describeTopics, describeConfigs,
//    deleteTopics, listTopics.
//
// Prints one line per step; on any mismatch prints "FAIL: ..." and exits with status 1.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DeletedRecords;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class FloeJavaCheck {
    private static final int RECORDS = 10_000;
    private static final String DATA_TOPIC = "java-data";
    private static final String ADMIN_TOPIC = "java-admin";
    private static final String RETENTION_MS = "3600000";

    /** What the producer was told about one record. */
    private static final class Sent {
        final String key;
        final String value;
        final String header;
        final int partition;
        final long offset;

        Sent(String key, String value, String header, int partition, long offset) {
            this.key = key;
            this.value = value;
            this.header = header;
            this.partition = partition;
            this.offset = offset;
        }
    }

    private static void fail(String message) {
        System.out.println("FAIL: " + message);
        System.out.flush();
        System.exit(1);
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            fail(message);
        }
    }

    private static String utf8(byte[] bytes) {
        return bytes == null ? null : new String(bytes, StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: FloeJavaCheck BOOTSTRAP");
            System.exit(2);
        }
        String bootstrap = args[0];
        try (AdminClient admin = AdminClient.create(adminProps(bootstrap))) {
            admin.createTopics(List.of(new NewTopic(DATA_TOPIC, 2, (short) 1)))
                    .all()
                    .get(60, TimeUnit.SECONDS);
            System.out.println("created " + DATA_TOPIC + " with 2 partitions");
        }
        List<Sent> sent = produce(bootstrap);
        consume(bootstrap, sent);
        deleteRecordsAndLogDirs(bootstrap, sent);
        keylessToCompacted(bootstrap);
        adminRoundTrip(bootstrap);
        System.out.println("OK");
    }

    private static Properties adminProps(String bootstrap) {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        return props;
    }

    private static List<Sent> produce(String bootstrap) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        // Everything else stays at the client's defaults: enable.idempotence=true, acks=all.
        List<Future<RecordMetadata>> futures = new ArrayList<>(RECORDS);
        List<String[]> payloads = new ArrayList<>(RECORDS);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            for (int i = 0; i < RECORDS; i++) {
                String key = "key-" + i;
                String value = "value-" + i + "-" + "x".repeat(i % 97);
                String header = "h-" + i;
                ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(
                        DATA_TOPIC,
                        null,
                        key.getBytes(StandardCharsets.UTF_8),
                        value.getBytes(StandardCharsets.UTF_8),
                        List.<Header>of(
                                new RecordHeader("seq", header.getBytes(StandardCharsets.UTF_8)),
                                new RecordHeader("client", "java".getBytes(StandardCharsets.UTF_8))));
                futures.add(producer.send(record));
                payloads.add(new String[] {key, value, header});
            }
            producer.flush();
            List<Sent> sent = new ArrayList<>(RECORDS);
            for (int i = 0; i < RECORDS; i++) {
                RecordMetadata md = futures.get(i).get(60, TimeUnit.SECONDS);
                check(md.hasOffset(), "record " + i + " acknowledged without an offset");
                String[] p = payloads.get(i);
                sent.add(new Sent(p[0], p[1], p[2], md.partition(), md.offset()));
            }
            System.out.println("produced " + RECORDS + " records (idempotent, acks=all)");
            return sent;
        }
    }

    private static void consume(String bootstrap, List<Sent> sent) {
        Map<Integer, Map<Long, Sent>> expected = new HashMap<>();
        for (Sent s : sent) {
            Sent previous = expected.computeIfAbsent(s.partition, p -> new HashMap<>()).put(s.offset, s);
            if (previous != null) {
                fail("two records acknowledged at partition " + s.partition + " offset "
                        + s.offset + ": " + previous.key + " and " + s.key);
            }
        }
        check(expected.size() == 2, "records landed in " + expected.size()
                + " partitions, expected both partitions of " + DATA_TOPIC);
        for (Map.Entry<Integer, Map<Long, Sent>> e : expected.entrySet()) {
            int n = e.getValue().size();
            for (long o = 0; o < n; o++) {
                check(e.getValue().containsKey(o), "partition " + e.getKey()
                        + ": acknowledged offsets are not 0.." + (n - 1) + " (missing " + o + ")");
            }
        }

        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> tps = Arrays.asList(
                    new TopicPartition(DATA_TOPIC, 0), new TopicPartition(DATA_TOPIC, 1));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            Map<TopicPartition, Long> ends = consumer.endOffsets(tps, Duration.ofSeconds(60));
            for (TopicPartition tp : tps) {
                long want = expected.get(tp.partition()).size();
                check(ends.get(tp) == want, tp + ": end offset " + ends.get(tp) + ", expected " + want);
            }
            Map<Integer, Long> nextOffset = new HashMap<>(Map.of(0, 0L, 1, 0L));
            int received = 0;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (received < RECORDS) {
                check(System.nanoTime() < deadline, "consumed only " + received + " of "
                        + RECORDS + " records within 120 s; next offsets " + nextOffset);
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(500));
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    String where = DATA_TOPIC + "-" + r.partition() + "@" + r.offset();
                    long next = nextOffset.get(r.partition());
                    check(r.offset() == next, where + ": expected offset " + next + " next");
                    nextOffset.put(r.partition(), next + 1);
                    Sent s = expected.get(r.partition()).get(r.offset());
                    check(s != null, where + ": no record was acknowledged there");
                    check(s.key.equals(utf8(r.key())), where + ": key " + utf8(r.key())
                            + ", expected " + s.key);
                    check(s.value.equals(utf8(r.value())), where + ": value " + utf8(r.value())
                            + ", expected " + s.value);
                    Header[] headers = r.headers().toArray();
                    check(headers.length == 2, where + ": " + headers.length + " headers, expected 2");
                    check(headers[0].key().equals("seq") && s.header.equals(utf8(headers[0].value())),
                            where + ": first header " + headers[0].key() + "=" + utf8(headers[0].value())
                                    + ", expected seq=" + s.header);
                    check(headers[1].key().equals("client") && "java".equals(utf8(headers[1].value())),
                            where + ": second header " + headers[1].key() + "=" + utf8(headers[1].value())
                                    + ", expected client=java");
                    received++;
                }
            }
            ConsumerRecords<byte[], byte[]> extra = consumer.poll(Duration.ofMillis(500));
            check(extra.isEmpty(), "read " + extra.count() + " records past the acknowledged ones");
            System.out.println("consumed " + received + " records with assign + seekToBeginning");
        }
    }

    private static void deleteRecordsAndLogDirs(String bootstrap, List<Sent> sent) throws Exception {
        TopicPartition p0 = new TopicPartition(DATA_TOPIC, 0);
        long count = sent.stream().filter(s -> s.partition == 0).count();
        long target = count / 2;
        try (AdminClient admin = AdminClient.create(adminProps(bootstrap))) {
            DeletedRecords deleted = admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(target)))
                    .lowWatermarks()
                    .get(p0)
                    .get(60, TimeUnit.SECONDS);
            check(deleted.lowWatermark() == target, "deleteRecords: low watermark "
                    + deleted.lowWatermark() + ", expected " + target);
            long earliest = admin.listOffsets(Map.of(p0, OffsetSpec.earliest()))
                    .partitionResult(p0)
                    .get(60, TimeUnit.SECONDS)
                    .offset();
            check(earliest == target, "listOffsets earliest " + earliest + " after deleteRecords to " + target);
            System.out.println("deleteRecords moved " + p0 + " to " + target);

            Properties props = new Properties();
            props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
                consumer.assign(List.of(p0));
                consumer.seekToBeginning(List.of(p0));
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(500));
                while (records.isEmpty()) {
                    check(System.nanoTime() < deadline, "nothing read after deleteRecords");
                    records = consumer.poll(Duration.ofMillis(500));
                }
                long first = records.iterator().next().offset();
                check(first == target, "first record after deleteRecords at " + first + ", expected " + target);
            }

            int node = admin.describeCluster().nodes().get(60, TimeUnit.SECONDS).iterator().next().id();
            Map<String, LogDirDescription> dirs = admin.describeLogDirs(List.of(node))
                    .allDescriptions()
                    .get(60, TimeUnit.SECONDS)
                    .get(node);
            check(dirs != null && !dirs.isEmpty(), "describeLogDirs returned no directory");
            for (LogDirDescription dir : dirs.values()) {
                check(dir.error() == null, "describeLogDirs: " + dir.error());
                for (int partition = 0; partition < 2; partition++) {
                    ReplicaInfo info = dir.replicaInfos().get(new TopicPartition(DATA_TOPIC, partition));
                    check(info != null, "describeLogDirs lists no " + DATA_TOPIC + "-" + partition);
                    System.out.println("LOGDIR " + DATA_TOPIC + "-" + partition + " " + info.size());
                }
            }
        }
    }

    /** A record without a key to a cleanup.policy=compact topic fails with InvalidRecordException. */
    private static void keylessToCompacted(String bootstrap) throws Exception {
        String topic = "java-compacted";
        try (AdminClient admin = AdminClient.create(adminProps(bootstrap))) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1)
                    .configs(Map.of("cleanup.policy", "compact"))))
                    .all()
                    .get(60, TimeUnit.SECONDS);
        }
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            RecordMetadata keyed = producer.send(new ProducerRecord<>(topic,
                    "k".getBytes(StandardCharsets.UTF_8), "v".getBytes(StandardCharsets.UTF_8)))
                    .get(60, TimeUnit.SECONDS);
            check(keyed.offset() == 0, "keyed record to a compacted topic at " + keyed.offset());
            try {
                producer.send(new ProducerRecord<>(topic, null, "v".getBytes(StandardCharsets.UTF_8)))
                        .get(60, TimeUnit.SECONDS);
                fail("a keyless record to a compacted topic was acknowledged");
            } catch (java.util.concurrent.ExecutionException e) {
                check(e.getCause() instanceof org.apache.kafka.common.InvalidRecordException,
                        "keyless record to a compacted topic failed with " + e.getCause());
                System.out.println("keyless record refused: " + e.getCause().getMessage());
            }
        }
    }

    private static void adminRoundTrip(String bootstrap) throws Exception {
        try (AdminClient admin = AdminClient.create(adminProps(bootstrap))) {
            NewTopic topic = new NewTopic(ADMIN_TOPIC, 3, (short) 1)
                    .configs(Map.of("retention.ms", RETENTION_MS));
            admin.createTopics(List.of(topic)).all().get(60, TimeUnit.SECONDS);
            System.out.println("created " + ADMIN_TOPIC + " with 3 partitions, retention.ms=" + RETENTION_MS);

            TopicDescription description = admin.describeTopics(List.of(ADMIN_TOPIC))
                    .allTopicNames()
                    .get(60, TimeUnit.SECONDS)
                    .get(ADMIN_TOPIC);
            check(description != null, "describeTopics did not return " + ADMIN_TOPIC);
            check(description.partitions().size() == 3, "describeTopics: " + ADMIN_TOPIC + " has "
                    + description.partitions().size() + " partitions, expected 3");

            ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, ADMIN_TOPIC);
            Config config = admin.describeConfigs(List.of(resource))
                    .all()
                    .get(60, TimeUnit.SECONDS)
                    .get(resource);
            check(config != null, "describeConfigs did not return " + ADMIN_TOPIC);
            ConfigEntry retention = config.get("retention.ms");
            check(retention != null, "describeConfigs: no retention.ms entry for " + ADMIN_TOPIC);
            check(RETENTION_MS.equals(retention.value()), "describeConfigs: retention.ms="
                    + retention.value() + ", expected " + RETENTION_MS);
            System.out.println("describeTopics and describeConfigs match");

            Set<String> before = admin.listTopics().names().get(60, TimeUnit.SECONDS);
            check(before.contains(ADMIN_TOPIC) && before.contains(DATA_TOPIC),
                    "listTopics before delete: " + before);

            admin.deleteTopics(List.of(ADMIN_TOPIC)).all().get(60, TimeUnit.SECONDS);
            // Deletion may complete after the response (it does in Apache Kafka), so wait for
            // listTopics to stop showing the topic rather than expecting it at once.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            Set<String> after = admin.listTopics().names().get(60, TimeUnit.SECONDS);
            while (after.contains(ADMIN_TOPIC)) {
                check(System.nanoTime() < deadline, "listTopics still shows " + ADMIN_TOPIC
                        + " 30 s after deleteTopics: " + after);
                Thread.sleep(200);
                after = admin.listTopics().names().get(60, TimeUnit.SECONDS);
            }
            check(after.contains(DATA_TOPIC), "listTopics after delete lost " + DATA_TOPIC + ": " + after);
            System.out.println("deleted " + ADMIN_TOPIC + "; listTopics no longer shows it");
        }
    }

    private FloeJavaCheck() {}
}
