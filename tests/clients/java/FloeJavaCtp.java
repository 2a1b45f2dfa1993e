// Exactly-once consume-transform-produce on the Apache Kafka Java client (kafka-clients
// 3.9.1), for tests/tests/transactions.rs, which SIGKILLs it at random points and starts it
// again: the Java counterpart of tests/clients/python/txn_ctp.py, with the same flags and
// output lines.
//
// Usage: java -cp 'classes:libs/*' FloeJavaCtp --bootstrap HOST:PORT --input I --output O
//          --group G --transactional-id X --count N [--batch 30] [--process-ms 0]
//          [--session-timeout-ms 6000] [--timeout 280]
//
// A KafkaProducer with default settings plus transactional.id X (the same id on every start)
// calls initTransactions: that fences any earlier instance, and the coordinator ends that
// instance's open transaction before the new one gets its epoch. A KafkaConsumer (classic
// group protocol) with isolation.level=read_committed, enable.auto.commit=false,
// auto.offset.reset=earliest and max.poll.records=--batch then subscribes to I in group G.
// The input is written before the app starts: its end offsets must add up to N. For each
// poll that returns records the app begins a transaction, sends every record to O on the
// same partition with the same key and the value in-<n> turned into out-<n>, waits
// --process-ms (so a SIGKILL often lands inside a transaction), sends the consumed offsets
// (the next offset of each partition) with sendOffsetsToTransaction(offsets,
// consumer.groupMetadata()) and commits. The error handling is the one KafkaProducer's
// documentation gives: ProducerFencedException, OutOfOrderSequenceException,
// AuthorizationException (and InvalidProducerEpochException, UnsupportedVersionException)
// are fatal: the app exits 1; any other KafkaException aborts the transaction and rewinds
// the consumer to the group's committed offsets, so what the aborted transaction consumed is
// consumed again.
//
// Stdout, one JSON line each, flushed at once (the test may SIGKILL the app):
//   {"initialized": true}                           after initTransactions
//   {"txn": n, "records": k, "processed": total}    after each transaction this run committed
//   {"aborted": n, "error": description}            after a transaction this run aborted
//   {"done": true, "transactions": n, "records": total, "aborted": n}
//       once it owns every partition of I and its position in each is I's end offset (every
//       position comes from a committed transaction or the group's committed offsets); the
//       app then closes the consumer and the producer and exits 0.
// Exits 1 with a message on stderr after --timeout seconds or on any fatal error.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class FloeJavaCtp {
    /** A failed run: the message goes to stderr and the app exits 1. */
    private static final class Failed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Failed(String message) {
            super(message);
        }

        Failed(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private static void log(String message) {
        System.err.println("[FloeJavaCtp] " + message);
        System.err.flush();
    }

    /** One JSON line on stdout, flushed at once. */
    private static void emit(String json) {
        System.out.println(json);
        System.out.flush();
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    /** An exception with its causes, for messages. */
    private static String describe(Throwable e) {
        StringBuilder b = new StringBuilder(e.toString());
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            b.append(" <- ").append(c);
        }
        return b.toString();
    }

    private static String utf8(byte[] bytes) {
        return bytes == null ? null : new String(bytes, StandardCharsets.UTF_8);
    }

    private static String partitionsOf(Collection<TopicPartition> tps) {
        return tps.stream().map(tp -> String.valueOf(tp.partition())).sorted()
                .collect(Collectors.joining(",", "[", "]"));
    }

    public static void main(String[] argv) {
        Map<String, String> args = new HashMap<>();
        args.put("--batch", "30");
        args.put("--process-ms", "0");
        args.put("--session-timeout-ms", "6000");
        args.put("--timeout", "280");
        for (int i = 0; i + 1 < argv.length; i += 2) {
            args.put(argv[i], argv[i + 1]);
        }
        for (String required : List.of("--bootstrap", "--input", "--output", "--group",
                "--transactional-id", "--count")) {
            if (!args.containsKey(required)) {
                System.err.println("missing " + required);
                System.exit(2);
            }
        }
        try {
            new FloeJavaCtp(args).run();
        } catch (Failed e) {
            log("FAILED: " + e.getMessage() + (e.getCause() == null ? "" : ": " + describe(e.getCause())));
            System.exit(1);
        } catch (Throwable e) {
            log("FAILED: unexpected " + describe(e));
            e.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }

    private final String bootstrap;
    private final String input;
    private final String output;
    private final String group;
    private final String transactionalId;
    private final long count;
    private final int batch;
    private final long processMs;
    private final String sessionTimeoutMs;
    private final long deadlineNanos;

    private FloeJavaCtp(Map<String, String> args) {
        bootstrap = args.get("--bootstrap");
        input = args.get("--input");
        output = args.get("--output");
        group = args.get("--group");
        transactionalId = args.get("--transactional-id");
        count = Long.parseLong(args.get("--count"));
        batch = Integer.parseInt(args.get("--batch"));
        processMs = Long.parseLong(args.get("--process-ms"));
        sessionTimeoutMs = args.get("--session-timeout-ms");
        deadlineNanos = System.nanoTime() + (long) (Double.parseDouble(args.get("--timeout")) * 1e9);
    }

    private Properties producerProps() {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return props;
    }

    private Properties consumerProps() {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, String.valueOf(batch));
        // The default 45 s would hold every restart's rebalance that long: the killed
        // instance's member stays in the group until its session expires.
        props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, sessionTimeoutMs);
        props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return props;
    }

    private void run() throws InterruptedException {
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerProps());
        try {
            producer.initTransactions();
        } catch (KafkaException e) {
            throw new Failed("initTransactions", e);
        }
        emit("{\"initialized\": true}");

        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProps());
        List<PartitionInfo> infos = consumer.partitionsFor(input, Duration.ofSeconds(60));
        if (infos == null || infos.isEmpty()) {
            throw new Failed("no partitions of " + input);
        }
        List<TopicPartition> all = new ArrayList<>();
        for (PartitionInfo info : infos) {
            all.add(new TopicPartition(input, info.partition()));
        }
        Map<TopicPartition, Long> ends = consumer.endOffsets(all, Duration.ofSeconds(60));
        long total = ends.values().stream().mapToLong(Long::longValue).sum();
        if (total != count) {
            throw new Failed("the end offsets of " + input + " add up to " + total + ", expected " + count
                    + ": " + ends);
        }
        log("input end offsets " + ends);

        consumer.subscribe(List.of(input), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                log("revoked " + partitionsOf(partitions));
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                log("assigned " + partitionsOf(partitions) + ", generation "
                        + consumer.groupMetadata().generationId());
            }

            @Override
            public void onPartitionsLost(Collection<TopicPartition> partitions) {
                log("lost " + partitionsOf(partitions));
            }
        });

        long transactions = 0;
        long processed = 0;
        long aborted = 0;
        while (!done(consumer, ends)) {
            if (System.nanoTime() > deadlineNanos) {
                Map<Integer, Long> positions = new TreeMap<>();
                for (TopicPartition tp : consumer.assignment()) {
                    positions.put(tp.partition(), consumer.position(tp));
                }
                throw new Failed("not done within the timeout: positions " + positions + ", input ends "
                        + ends + ", " + processed + " records in " + transactions + " transactions this run");
            }
            ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
            if (records.isEmpty()) {
                continue;
            }
            try {
                transact(producer, consumer, records);
            } catch (ProducerFencedException | OutOfOrderSequenceException | AuthorizationException
                    | InvalidProducerEpochException | UnsupportedVersionException e) {
                throw new Failed("fatal transaction error", e);
            } catch (KafkaException e) {
                log("aborting after " + describe(e));
                try {
                    producer.abortTransaction();
                } catch (KafkaException abortError) {
                    throw new Failed("abortTransaction after " + describe(e), abortError);
                }
                aborted++;
                emit("{\"aborted\": " + aborted + ", \"error\": " + quote(describe(e)) + "}");
                rewind(consumer);
                continue;
            }
            transactions++;
            processed += records.count();
            emit("{\"txn\": " + transactions + ", \"records\": " + records.count() + ", \"processed\": "
                    + processed + "}");
        }

        emit("{\"done\": true, \"transactions\": " + transactions + ", \"records\": " + processed
                + ", \"aborted\": " + aborted + "}");
        consumer.close(Duration.ofSeconds(30));
        producer.close(Duration.ofSeconds(30));
    }

    /** Owns every input partition and is at its end in each. */
    private static boolean done(KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> ends) {
        Set<TopicPartition> assignment = consumer.assignment();
        if (!assignment.containsAll(ends.keySet())) {
            return false;
        }
        for (Map.Entry<TopicPartition, Long> end : ends.entrySet()) {
            if (consumer.position(end.getKey(), Duration.ofSeconds(60)) < end.getValue()) {
                return false;
            }
        }
        return true;
    }

    private void transact(KafkaProducer<byte[], byte[]> producer, KafkaConsumer<byte[], byte[]> consumer,
            ConsumerRecords<byte[], byte[]> records) throws InterruptedException {
        producer.beginTransaction();
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> r : records) {
            String value = utf8(r.value());
            if (value == null || !value.startsWith("in-")) {
                throw new Failed("unexpected input record at " + r.partition() + "/" + r.offset() + ": " + value);
            }
            byte[] out = ("out-" + value.substring(3)).getBytes(StandardCharsets.UTF_8);
            producer.send(new ProducerRecord<>(output, r.partition(), r.key(), out));
            offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
        }
        if (processMs > 0) {
            Thread.sleep(processMs);
        }
        producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
        producer.commitTransaction();
    }

    /** Back to the group's committed offsets: what the aborted transaction consumed is
     * consumed again. */
    private static void rewind(KafkaConsumer<byte[], byte[]> consumer) {
        Set<TopicPartition> assignment = consumer.assignment();
        if (assignment.isEmpty()) {
            return;
        }
        Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(assignment, Duration.ofSeconds(60));
        for (TopicPartition tp : assignment) {
            OffsetAndMetadata om = committed.get(tp);
            if (om == null) {
                consumer.seekToBeginning(List.of(tp));
            } else {
                consumer.seek(tp, om.offset());
            }
        }
        log("rewound to the committed offsets " + committed);
    }
}
