// The Apache Kafka Java client (kafka-clients 3.9.1) managing and meeting Floe's ACLs.
//
// Usage: java -cp 'classes:libs/*' FloeJavaAcls BOOTSTRAP ADMIN_PASSWORD BOB_PASSWORD
//
// BOOTSTRAP is a SASL_PLAINTEXT listener; every client logs in with PLAIN. The topics
// bob-orders and alice-orders exist (tests/clients/python/acl_check.py setup).
//
// As admin (a super user), AdminClient.createAcls grants User:bob READ on topic bob-orders,
// READ on the groups prefixed "bob-" and WRITE on bob-orders; describeAcls with a filter
// for bob returns exactly those. As bob: an idempotent producer writes bob-orders; a
// consumer in group bob-java reads it back and commits; a consumer in group other-java
// fails with GroupAuthorizationException; one subscribed to alice-orders with
// TopicAuthorizationException; bob's AdminClient lists only bob-orders of those topics and
// gets TopicAuthorizationException from createTopics and ClusterAuthorizationException
// from describeAcls. Then admin's deleteAcls with a filter removes exactly the WRITE
// binding, after which bob's producer fails with TopicAuthorizationException and an
// idempotent one (no WRITE on any topic left, KIP-679) with ClusterAuthorizationException.
//
// Prints one line per check, "OK" at the end; on a mismatch prints "FAIL: ..." and exits
// with status 1.

import java.time.Duration;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.DeleteAclsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.ClusterAuthorizationException;
import org.apache.kafka.common.errors.GroupAuthorizationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class FloeJavaAcls {
    static final String BOB = "User:bob";
    static final int RECORDS = 20;

    static final AclBinding READ_TOPIC = allow(ResourceType.TOPIC, "bob-orders", PatternType.LITERAL, AclOperation.READ);
    static final AclBinding READ_GROUPS = allow(ResourceType.GROUP, "bob-", PatternType.PREFIXED, AclOperation.READ);
    static final AclBinding WRITE_TOPIC = allow(ResourceType.TOPIC, "bob-orders", PatternType.LITERAL, AclOperation.WRITE);

    static AclBinding allow(ResourceType type, String name, PatternType pattern, AclOperation op) {
        return new AclBinding(new ResourcePattern(type, name, pattern),
                new AccessControlEntry(BOB, "*", op, AclPermissionType.ALLOW));
    }

    static void fail(String message) {
        System.out.println("FAIL: " + message);
        System.exit(1);
    }

    static Properties login(String bootstrap, String user, String password) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("security.protocol", "SASL_PLAINTEXT");
        p.put("sasl.mechanism", "PLAIN");
        p.put("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required username=\""
                + user + "\" password=\"" + password + "\";");
        p.put("request.timeout.ms", "15000");
        p.put("default.api.timeout.ms", "20000");
        return p;
    }

    /** A call returning a future (send, an admin call). */
    interface Call {
        Future<?> start() throws Exception;
    }

    /**
     * Runs `call`, which must fail with `expected`: as the future's cause, or thrown at once
     * (a producer in a fatal state throws from send, with the broker's error as the cause).
     */
    static void expectFailure(String what, Call call, Class<? extends Exception> expected) throws Exception {
        Throwable error = null;
        try {
            call.start().get(30, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            error = e.getCause();
        } catch (org.apache.kafka.common.KafkaException e) {
            error = expected.isInstance(e) ? e : e.getCause();
        }
        if (error == null) {
            fail(what + ": expected " + expected.getSimpleName() + ", it succeeded");
        }
        if (!expected.isInstance(error)) {
            fail(what + ": expected " + expected.getSimpleName() + ", got " + error);
        }
        System.out.println(what + ": " + expected.getSimpleName());
    }

    static Set<AclBinding> bobsBindings(AdminClient admin) throws Exception {
        AclBindingFilter bob = new AclBindingFilter(ResourcePatternFilter.ANY,
                new AccessControlEntryFilter(BOB, null, AclOperation.ANY, AclPermissionType.ANY));
        return new HashSet<>(admin.describeAcls(bob).values().get(30, TimeUnit.SECONDS));
    }

    static KafkaProducer<String, String> producer(Properties bob, boolean idempotent) {
        Properties p = (Properties) bob.clone();
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("acks", "all");
        p.put("enable.idempotence", Boolean.toString(idempotent));
        p.put("max.block.ms", "20000");
        p.put("delivery.timeout.ms", "20000");
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<String, String> consumer(Properties bob, String group) {
        Properties c = (Properties) bob.clone();
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        c.put("group.id", group);
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        return new KafkaConsumer<>(c);
    }

    /** Polls until poll throws; the exception must be `expected`. */
    static void expectPollFailure(String what, Properties bob, String group, String topic,
            Class<? extends Exception> expected) {
        try (KafkaConsumer<String, String> consumer = consumer(bob, group)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 30_000;
            while (System.currentTimeMillis() < deadline) {
                try {
                    consumer.poll(Duration.ofMillis(200));
                } catch (Exception e) {
                    if (expected.isInstance(e)) {
                        System.out.println(what + ": " + expected.getSimpleName());
                        return;
                    }
                    fail(what + ": expected " + expected.getSimpleName() + ", got " + e);
                }
            }
            fail(what + ": no error within 30 s");
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        Properties admin = login(bootstrap, "admin", args[1]);
        Properties bob = login(bootstrap, "bob", args[2]);

        try (AdminClient a = AdminClient.create(admin)) {
            a.createAcls(List.of(READ_TOPIC, READ_GROUPS, WRITE_TOPIC)).all().get(30, TimeUnit.SECONDS);
            Set<AclBinding> got = bobsBindings(a);
            if (!got.equals(Set.of(READ_TOPIC, READ_GROUPS, WRITE_TOPIC))) {
                fail("describeAcls for bob: " + got);
            }
        }
        System.out.println("createAcls + describeAcls: 3 bindings for bob");

        // What bob was granted works: an idempotent producer (KIP-679: WRITE on a topic is
        // enough for InitProducerId), a consumer in a "bob-" group.
        try (KafkaProducer<String, String> p = producer(bob, true)) {
            for (int i = 0; i < RECORDS; i++) {
                RecordMetadata m = p.send(new ProducerRecord<>("bob-orders", "k" + i, "v" + i)).get(30, TimeUnit.SECONDS);
                if (m.offset() < 0) {
                    fail("produce acknowledged at offset " + m.offset());
                }
            }
        }
        System.out.println("bob produced " + RECORDS + " to bob-orders");
        Set<String> seen = new HashSet<>();
        try (KafkaConsumer<String, String> c = consumer(bob, "bob-java")) {
            c.subscribe(List.of("bob-orders"));
            long deadline = System.currentTimeMillis() + 30_000;
            while (seen.size() < RECORDS && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    seen.add(r.key());
                }
            }
            c.commitSync();
        }
        if (seen.size() != RECORDS) {
            fail("bob consumed " + seen.size() + " of " + RECORDS);
        }
        System.out.println("bob consumed " + RECORDS + " in group bob-java and committed");

        // What he was not granted fails with the right exception.
        expectPollFailure("consume bob-orders in group other-java", bob, "other-java", "bob-orders",
                GroupAuthorizationException.class);
        expectPollFailure("consume alice-orders in group bob-java", bob, "bob-java", "alice-orders",
                TopicAuthorizationException.class);
        try (AdminClient b = AdminClient.create(bob)) {
            Set<String> names = b.listTopics().names().get(30, TimeUnit.SECONDS);
            if (!names.contains("bob-orders") || names.contains("alice-orders") || names.contains("shared")) {
                fail("bob lists " + names);
            }
            System.out.println("bob lists bob-orders only: " + names);
            expectFailure("bob createTopics bob-new", () -> b.createTopics(List.of(new NewTopic("bob-new", 1, (short) 1))).all(),
                    TopicAuthorizationException.class);
            expectFailure("bob describeAcls", () -> b.describeAcls(AclBindingFilter.ANY).values(),
                    ClusterAuthorizationException.class);
            expectFailure("bob createAcls", () -> b.createAcls(List.of(allow(ResourceType.TOPIC, "*", PatternType.LITERAL,
                    AclOperation.ALL))).all(), ClusterAuthorizationException.class);
        }

        // Admin takes WRITE away with a filter; exactly that binding goes.
        try (AdminClient a = AdminClient.create(admin)) {
            AclBindingFilter writes = new AclBindingFilter(
                    new ResourcePatternFilter(ResourceType.TOPIC, "bob-orders", PatternType.LITERAL),
                    new AccessControlEntryFilter(BOB, "*", AclOperation.WRITE, AclPermissionType.ALLOW));
            DeleteAclsResult result = a.deleteAcls(List.of(writes));
            Collection<AclBinding> deleted = result.all().get(30, TimeUnit.SECONDS);
            if (!new HashSet<>(deleted).equals(Set.of(WRITE_TOPIC))) {
                fail("deleteAcls deleted " + deleted);
            }
            Set<AclBinding> left = bobsBindings(a);
            if (!left.equals(Set.of(READ_TOPIC, READ_GROUPS))) {
                fail("after deleteAcls, bob has " + left);
            }
        }
        System.out.println("deleteAcls: WRITE on bob-orders deleted, 2 bindings left");

        try (KafkaProducer<String, String> p = producer(bob, false)) {
            expectFailure("bob produce to bob-orders without WRITE",
                    () -> p.send(new ProducerRecord<>("bob-orders", "k", "v")), TopicAuthorizationException.class);
        }
        try (KafkaProducer<String, String> p = producer(bob, true)) {
            expectFailure("bob idempotent producer without WRITE on any topic",
                    () -> p.send(new ProducerRecord<>("bob-orders", "k", "v")), ClusterAuthorizationException.class);
        }
        System.out.println("OK");
    }
}
