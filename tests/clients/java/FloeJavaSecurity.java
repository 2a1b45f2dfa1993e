// The Apache Kafka Java client (kafka-clients 3.9.1) over Floe's secured listeners.
//
// Usage: java -cp 'classes:libs/*' FloeJavaSecurity BOOTSTRAP PROTOCOL MECHANISM USER PASSWORD CA_PEM TOPIC [slow]
//
// Configures the client as a Java user would for SASL_SSL (or SASL_PLAINTEXT): the
// JAAS line of the mechanism's login module, a PEM truststore (KIP-651), host name
// verification on. Creates TOPIC with AdminClient, produces records (acks=all,
// idempotent), reads them back with a consumer group and compares every value.
// With PASSWORD "wrong:<password>", expects the client to fail with
// SaslAuthenticationException instead, and prints "AUTH FAILED <message>". With "slow",
// sends one record every 10 ms (about 5 s in all), so that a broker with a short
// connections.max.reauth.ms makes the client re-authenticate (KIP-368) meanwhile.
//
// Prints "OK" at the end; on a mismatch prints "FAIL: ..." and exits with status 1.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class FloeJavaSecurity {
    static final int RECORDS = 500;

    static void fail(String message) {
        System.out.println("FAIL: " + message);
        System.exit(1);
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], protocol = args[1], mechanism = args[2], user = args[3];
        String password = args[4], ca = args[5], topic = args[6];
        boolean expectFailure = password.startsWith("wrong:");
        boolean slow = args.length > 7 && args[7].equals("slow");
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        common.put("security.protocol", protocol);
        common.put("sasl.mechanism", mechanism);
        String module = mechanism.equals("PLAIN")
                ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule";
        common.put("sasl.jaas.config", module + " required username=\"" + user
                + "\" password=\"" + password.replaceFirst("^wrong:", "") + "\";");
        if (protocol.endsWith("SSL")) {
            common.put("ssl.truststore.type", "PEM");
            common.put("ssl.truststore.location", ca);
        }
        common.put("request.timeout.ms", "20000");
        common.put("default.api.timeout.ms", "30000");

        try (AdminClient admin = AdminClient.create(common)) {
            try {
                admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get(30, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                if (expectFailure && e.getCause() instanceof SaslAuthenticationException) {
                    System.out.println("AUTH FAILED " + e.getCause().getMessage());
                    System.out.println("OK");
                    return;
                }
                throw e;
            }
            if (expectFailure) {
                fail("a wrong password was accepted");
            }
        }
        System.out.println("created " + topic);

        Properties p = (Properties) common.clone();
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("acks", "all");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (int i = 0; i < RECORDS; i++) {
                producer.send(new ProducerRecord<>(topic, Integer.toString(i), "value-" + i));
                if (slow) {
                    producer.flush();
                    Thread.sleep(10);
                }
            }
            producer.flush();
        }
        System.out.println("produced " + RECORDS);

        Properties c = (Properties) common.clone();
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        c.put("group.id", "java-security-" + UUID.randomUUID());
        c.put("auto.offset.reset", "earliest");
        Set<Integer> seen = new HashSet<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(Collections.singletonList(topic));
            long deadline = System.currentTimeMillis() + 90_000;
            while (seen.size() < RECORDS && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    int i = Integer.parseInt(r.key());
                    if (!r.value().equals("value-" + i)) {
                        fail("record " + i + " has value " + r.value());
                    }
                    seen.add(i);
                }
            }
            consumer.commitSync();
        }
        if (seen.size() != RECORDS) {
            fail("consumed " + seen.size() + " of " + RECORDS);
        }
        System.out.println("consumed " + seen.size());
        System.out.println("OK");
    }
}
