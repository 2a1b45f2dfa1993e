// A consumer-group member on the Apache Kafka Java client 3.9.1 (classic protocol):
// subscribe, process, commitSync.
//
// Usage: java -cp 'classes:libs/*' FloeGroupMember --bootstrap B --group G --topic T
//          --log PATH --stop-file PATH [--instance-id ID] [--assignor range|roundrobin]
//          [--session-timeout-ms 6000] [--heartbeat-ms 1000] [--process-ms 0]
//
// The same flags and event log as the Python members (tests/clients/python/groups_common.py):
// "own P,P", "rec P O V", "commit P N", "commitfail MSG", "error MSG", "closed", each line
// flushed to the OS at once so it survives a SIGKILL. The records of one poll are processed,
// then their next offsets are committed with commitSync.

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.consumer.RoundRobinAssignor;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class FloeGroupMember {
    private final OutputStream log;
    private final TreeSet<Integer> owned = new TreeSet<>();

    FloeGroupMember(String path) throws IOException {
        this.log = new FileOutputStream(path, true);
    }

    // FileOutputStream writes straight to the file descriptor: nothing is buffered in the JVM.
    synchronized void write(String line) {
        try {
            log.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    void own() {
        write("own " + (owned.isEmpty() ? "-"
            : owned.stream().map(String::valueOf).collect(Collectors.joining(","))));
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        args.put("--session-timeout-ms", "6000");
        args.put("--heartbeat-ms", "1000");
        args.put("--process-ms", "0");
        for (int i = 0; i + 1 < argv.length; i += 2) {
            args.put(argv[i], argv[i + 1]);
        }
        for (String required : List.of("--bootstrap", "--group", "--topic", "--log", "--stop-file")) {
            if (!args.containsKey(required)) {
                System.err.println("missing " + required);
                System.exit(2);
            }
        }
        String topic = args.get("--topic");
        Path stopFile = Path.of(args.get("--stop-file"));
        FloeGroupMember member = new FloeGroupMember(args.get("--log"));

        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("--bootstrap"));
        props.put(ConsumerConfig.GROUP_ID_CONFIG, args.get("--group"));
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, args.get("--session-timeout-ms"));
        props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, args.get("--heartbeat-ms"));
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        if (args.containsKey("--instance-id")) {
            props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, args.get("--instance-id"));
        }
        if (args.containsKey("--assignor")) {
            String assignor = switch (args.get("--assignor")) {
                case "range" -> RangeAssignor.class.getName();
                case "roundrobin" -> RoundRobinAssignor.class.getName();
                default -> throw new IllegalArgumentException("unknown assignor " + args.get("--assignor"));
            };
            props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
        }

        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    partitions.forEach(tp -> member.owned.remove(tp.partition()));
                    member.own();
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    partitions.forEach(tp -> member.owned.add(tp.partition()));
                    member.own();
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                    member.write("error partitions lost");
                    onPartitionsRevoked(partitions);
                }
            });
            while (!Files.exists(stopFile)) {
                Map<TopicPartition, OffsetAndMetadata> next = new TreeMap<>(
                    (a, b) -> Integer.compare(a.partition(), b.partition()));
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    member.write("rec " + r.partition() + " " + r.offset() + " " + r.value());
                    next.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                if (next.isEmpty()) {
                    continue;
                }
                Thread.sleep(Long.parseLong(args.get("--process-ms")));
                try {
                    consumer.commitSync(next);
                } catch (KafkaException e) {
                    member.write("commitfail " + e);
                    continue;
                }
                next.forEach((tp, om) -> member.write("commit " + tp.partition() + " " + om.offset()));
            }
        }
        member.write("closed");
        member.log.close();
    }
}
