// Kafka transactions with the Apache Kafka Java client (kafka-clients 3.9.1) against Floe.
//
// Usage: java -cp 'classes:libs/*' FloeJavaTxnCheck BOOTSTRAP
//
// 1. A KafkaProducer with default settings plus transactional.id calls initTransactions and
//    runs five transactions over both partitions of a topic: commit, abort, commit, abort,
//    commit (two rounds of 25 records per partition in each, flushed, so every record is
//    acknowledged before its transaction ends). The first (committed) transaction also sends
//    offsets {0: 3, 1: 4} for a consumer group with sendOffsetsToTransaction, the second
//    (aborted) one {0: 7, 1: 8}.
// 2. The end offsets (read_uncommitted: the high watermark) become exactly each partition's
//    data records plus one commit/abort marker per transaction; the read_committed end
//    offsets (the last stable offset) are then the same.
// 3. A KafkaConsumer with isolation.level=read_committed (assign + seekToBeginning) reads
//    to the end: exactly the committed records at their acknowledged offsets, in offset
//    order, with their keys, each once.
// 4. The same with isolation.level=read_uncommitted: exactly every acknowledged record,
//    committed or aborted (never a marker).
// 5. listConsumerGroupOffsets: the group's offsets are the committed transaction's; the
//    aborted transaction's are never seen.
//
// Prints one line per step and "OK" at the end; on a mismatch prints "FAIL: ..." and exits 1.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class FloeJavaTxnCheck {
    private static final String TOPIC = "java-txn";
    private static final int PARTITIONS = 2;
    private static final int ROUNDS = 2;
    private static final int PER_ROUND = 25;
    private static final String GROUP = "java-txn-offsets";
    private static final boolean[] COMMIT = {true, false, true, false, true};
    /** Offsets sent with transaction 0 (committed) and transaction 1 (aborted), by partition. */
    private static final long[][] SENT_OFFSETS = {{3, 4}, {7, 8}};

    /** One acknowledged record. */
    private record Acked(int partition, long offset, String key, String value) {
        @Override
        public String toString() {
            return partition + "@" + offset + " " + key + "=" + value;
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

    private static List<TopicPartition> partitions() {
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            tps.add(new TopicPartition(TOPIC, p));
        }
        return tps;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: FloeJavaTxnCheck BOOTSTRAP");
            System.exit(2);
        }
        String bootstrap = args[0];
        try (AdminClient admin = AdminClient.create(adminProps(bootstrap))) {
            admin.createTopics(List.of(new NewTopic(TOPIC, PARTITIONS, (short) 1)))
                    .all()
                    .get(60, TimeUnit.SECONDS);
        }
        List<Acked> committed = new ArrayList<>();
        List<Acked> aborted = new ArrayList<>();
        produce(bootstrap, committed, aborted);

        List<Acked> all = new ArrayList<>(committed);
        all.addAll(aborted);
        Map<Integer, List<Acked>> wantCommitted = byPartition(committed);
        Map<Integer, List<Acked>> wantAll = byPartition(all);
        Map<TopicPartition, Long> ends = waitForEnds(bootstrap, wantAll);
        read(bootstrap, "read_committed", ends, wantCommitted);
        read(bootstrap, "read_uncommitted", ends, wantAll);
        checkGroupOffsets(bootstrap);
        System.out.println("OK");
    }

    private static Properties adminProps(String bootstrap) {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "60000");
        return props;
    }

    private static void produce(String bootstrap, List<Acked> committed, List<Acked> aborted) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-txn-producer");
        // Everything else stays at the client's defaults (enable.idempotence=true, acks=all).
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            for (int t = 0; t < COMMIT.length; t++) {
                String outcome = COMMIT[t] ? "commit" : "abort";
                producer.beginTransaction();
                List<Future<RecordMetadata>> futures = new ArrayList<>();
                List<String[]> payloads = new ArrayList<>();
                for (int round = 0; round < ROUNDS; round++) {
                    for (int p = 0; p < PARTITIONS; p++) {
                        for (int k = 0; k < PER_ROUND; k++) {
                            String key = "k" + k;
                            String value = "t" + t + "-" + outcome + "-p" + p + "-r" + round + "-" + k;
                            futures.add(producer.send(new ProducerRecord<>(TOPIC, p,
                                    key.getBytes(StandardCharsets.UTF_8), value.getBytes(StandardCharsets.UTF_8))));
                            payloads.add(new String[] {key, value});
                        }
                    }
                    producer.flush();
                }
                List<Acked> acked = new ArrayList<>();
                for (int i = 0; i < futures.size(); i++) {
                    RecordMetadata md = futures.get(i).get(60, TimeUnit.SECONDS);
                    check(md.hasOffset(), "transaction " + t + ": record " + i + " acknowledged without an offset");
                    acked.add(new Acked(md.partition(), md.offset(), payloads.get(i)[0], payloads.get(i)[1]));
                }
                if (t < SENT_OFFSETS.length) {
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    for (int p = 0; p < PARTITIONS; p++) {
                        offsets.put(new TopicPartition(TOPIC, p), new OffsetAndMetadata(SENT_OFFSETS[t][p]));
                    }
                    producer.sendOffsetsToTransaction(offsets, new ConsumerGroupMetadata(GROUP));
                }
                if (COMMIT[t]) {
                    producer.commitTransaction();
                    committed.addAll(acked);
                } else {
                    producer.abortTransaction();
                    aborted.addAll(acked);
                }
                System.out.println("transaction " + t + ": " + acked.size() + " records acknowledged, "
                        + (COMMIT[t] ? "committed" : "aborted")
                        + (t < SENT_OFFSETS.length ? ", offsets " + java.util.Arrays.toString(SENT_OFFSETS[t]) + " sent" : ""));
            }
        }
    }

    private static Map<Integer, List<Acked>> byPartition(List<Acked> records) {
        Map<Integer, List<Acked>> out = new TreeMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            out.put(p, new ArrayList<>());
        }
        for (Acked a : records) {
            out.get(a.partition()).add(a);
        }
        for (List<Acked> rs : out.values()) {
            rs.sort((a, b) -> Long.compare(a.offset(), b.offset()));
        }
        return out;
    }

    private static KafkaConsumer<byte[], byte[]> consumer(String bootstrap, String isolation) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return new KafkaConsumer<>(props);
    }

    /** Waits until the high watermarks are the data records plus one marker per transaction
     * (the coordinator may write the last markers after commitTransaction returned); the
     * read_committed end offsets must then be the same. Returns them. */
    private static Map<TopicPartition, Long> waitForEnds(String bootstrap, Map<Integer, List<Acked>> all)
            throws Exception {
        Map<TopicPartition, Long> want = new HashMap<>();
        for (TopicPartition tp : partitions()) {
            want.put(tp, (long) all.get(tp.partition()).size() + COMMIT.length);
        }
        Map<TopicPartition, Long> ends;
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(bootstrap, "read_uncommitted")) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            ends = consumer.endOffsets(partitions(), Duration.ofSeconds(60));
            while (!ends.equals(want)) {
                for (TopicPartition tp : partitions()) {
                    check(ends.get(tp) <= want.get(tp), "high watermarks " + ends + ", expected " + want
                            + ": the data records plus one marker per transaction");
                }
                check(System.nanoTime() < deadline, "high watermarks " + ends + " after 60 s, expected " + want
                        + ": the data records plus one marker per transaction");
                Thread.sleep(200);
                ends = consumer.endOffsets(partitions(), Duration.ofSeconds(60));
            }
        }
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(bootstrap, "read_committed")) {
            Map<TopicPartition, Long> stable = consumer.endOffsets(partitions(), Duration.ofSeconds(60));
            check(stable.equals(ends), "read_committed end offsets (last stable offsets) " + stable
                    + " with no transaction open, expected the high watermarks " + ends);
        }
        System.out.println("end offsets " + ends + ": data records plus " + COMMIT.length + " markers");
        return ends;
    }

    /** A consumer with `isolation` reads every partition from the beginning to `ends`; what
     * it returns must be exactly `want`, partition by partition, in offset order. */
    private static void read(String bootstrap, String isolation, Map<TopicPartition, Long> ends,
            Map<Integer, List<Acked>> want) {
        Map<Integer, List<Acked>> got = new TreeMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            got.put(p, new ArrayList<>());
        }
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(bootstrap, isolation)) {
            consumer.assign(partitions());
            consumer.seekToBeginning(partitions());
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (true) {
                boolean done = true;
                for (TopicPartition tp : partitions()) {
                    long position = consumer.position(tp, Duration.ofSeconds(60));
                    check(position <= ends.get(tp), isolation + ": " + tp + " position " + position
                            + " past the end offset " + ends.get(tp));
                    done &= position == ends.get(tp);
                }
                if (done) {
                    break;
                }
                check(System.nanoTime() < deadline, isolation + ": not at the end offsets " + ends
                        + " within 120 s; read " + got);
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    got.get(r.partition()).add(new Acked(r.partition(), r.offset(), utf8(r.key()), utf8(r.value())));
                }
            }
            check(consumer.poll(Duration.ofMillis(500)).isEmpty(), isolation + ": records past the end offsets");
        }
        int count = 0;
        for (int p = 0; p < PARTITIONS; p++) {
            List<Acked> g = got.get(p);
            List<Acked> w = want.get(p);
            if (!g.equals(w)) {
                List<Acked> unexpected = new ArrayList<>(g);
                unexpected.removeAll(w);
                List<Acked> missing = new ArrayList<>(w);
                missing.removeAll(g);
                fail(isolation + ": partition " + p + ": read " + g.size() + " records, expected " + w.size()
                        + "; unexpected (first 5) " + unexpected.subList(0, Math.min(5, unexpected.size()))
                        + "; missing (first 5) " + missing.subList(0, Math.min(5, missing.size())));
            }
            count += g.size();
        }
        System.out.println(isolation + ": exactly the " + count + " expected records");
    }

    /** The group's committed offsets are the committed transaction's, never the aborted one's. */
    private static void checkGroupOffsets(String bootstrap) throws Exception {
        Map<TopicPartition, Long> want = new HashMap<>();
        for (TopicPartition tp : partitions()) {
            want.put(tp, SENT_OFFSETS[0][tp.partition()]);
        }
        try (AdminClient admin = AdminClient.create(adminProps(bootstrap))) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (true) {
                Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(GROUP)
                        .partitionsToOffsetAndMetadata()
                        .get(60, TimeUnit.SECONDS);
                Map<TopicPartition, Long> got = new HashMap<>();
                for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
                    if (e.getValue() != null) {
                        got.put(e.getKey(), e.getValue().offset());
                    }
                }
                if (got.equals(want)) {
                    break;
                }
                for (Map.Entry<TopicPartition, Long> e : got.entrySet()) {
                    check(e.getValue() != SENT_OFFSETS[1][e.getKey().partition()],
                            GROUP + " has an offset of the aborted transaction: " + got);
                }
                check(System.nanoTime() < deadline, GROUP + ": committed offsets " + got + " after 60 s, expected " + want);
                Thread.sleep(200);
            }
            System.out.println("sendOffsetsToTransaction: " + GROUP + " committed " + want
                    + " (the aborted transaction's offsets discarded)");
        }
    }

    private FloeJavaTxnCheck() {}
}
