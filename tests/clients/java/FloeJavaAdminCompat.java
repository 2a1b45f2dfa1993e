// Admin APIs that tools use, with the Apache Kafka Java AdminClient (kafka-clients 3.9.1)
// against Floe, answered as a single-node Kafka broker answers them.
//
// Usage: java -cp 'classes:libs/*' FloeJavaAdminCompat BOOTSTRAP
//
// 1. describeFeatures (ApiVersions' supported and finalized features): metadata.version,
//    group.version and transaction.version are supported and finalized within their range.
// 2. describeTopics (DescribeTopicPartitions, KIP-966, which this client prefers): every
//    partition of a 3-partition topic with this broker as leader, replica and ISR; an unknown
//    topic fails with UnknownTopicOrPartitionException.
// 3. electLeaders (PREFERRED) for a partition: ElectionNotNeededException; for all
//    partitions: an empty result; for an unknown partition: UnknownTopicOrPartitionException.
// 4. listPartitionReassignments: none, for all topics and for the topic.
// 5. describeConfigs for the broker: Kafka's broker config names with this broker's values
//    (node.id, log.dirs, offsets.topic.replication.factor, log.retention.ms, ...).
// 6. incrementalAlterConfigs message.format.version=2.8 on the topic: accepted, as Kafka 3.x
//    accepts it; describeConfigs shows it.
//
// Prints one line per step and "OK" at the end; on a mismatch prints "FAIL: ..." and exits 1.

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.clients.admin.SupportedVersionRange;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

public final class FloeJavaAdminCompat {
    private static final String TOPIC = "java-admin-compat";

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

    /** The cause of a failed future, or null if it succeeded. */
    private static Throwable failure(org.apache.kafka.common.KafkaFuture<?> f) throws Exception {
        try {
            f.get(30, TimeUnit.SECONDS);
            return null;
        } catch (ExecutionException e) {
            return e.getCause();
        }
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        try (AdminClient admin = AdminClient.create(props)) {
            admin.createTopics(List.of(new NewTopic(TOPIC, 3, (short) 1))).all().get(30, TimeUnit.SECONDS);
            int node = admin.describeCluster().controller().get(30, TimeUnit.SECONDS).id();

            // 1. Features.
            FeatureMetadata features = admin.describeFeatures().featureMetadata().get(30, TimeUnit.SECONDS);
            for (String name : List.of("metadata.version", "group.version", "transaction.version")) {
                SupportedVersionRange supported = features.supportedFeatures().get(name);
                FinalizedVersionRange finalized = features.finalizedFeatures().get(name);
                check(supported != null, "feature " + name + " not supported: " + features);
                check(finalized != null, "feature " + name + " not finalized: " + features);
                check(supported.minVersion() <= finalized.maxVersionLevel()
                        && finalized.maxVersionLevel() <= supported.maxVersion(),
                    "feature " + name + " finalized outside its supported range: " + features);
            }
            check(features.finalizedFeaturesEpoch().isPresent(), "no finalized features epoch");
            check(features.finalizedFeatures().get("group.version").maxVersionLevel() >= 1,
                "group.version < 1 although KIP-848 groups are served");
            System.out.println("features: " + features.finalizedFeatures());

            // 2. describeTopics through DescribeTopicPartitions.
            TopicDescription d = admin.describeTopics(List.of(TOPIC)).allTopicNames()
                .get(30, TimeUnit.SECONDS).get(TOPIC);
            check(d.partitions().size() == 3, "partitions: " + d);
            for (TopicPartitionInfo p : d.partitions()) {
                check(p.leader() != null && p.leader().id() == node, "leader of " + p);
                check(p.replicas().size() == 1 && p.isr().size() == 1, "replicas/isr of " + p);
            }
            check(d.topicId() != null && !d.isInternal(), "topic id/internal: " + d);
            Throwable unknown = failure(admin.describeTopics(List.of("no-such-topic")).allTopicNames());
            check(unknown instanceof UnknownTopicOrPartitionException, "unknown topic: " + unknown);
            System.out.println("describeTopics: " + d.partitions().size() + " partitions led by " + node);

            // 3. electLeaders.
            TopicPartition p0 = new TopicPartition(TOPIC, 0);
            Map<TopicPartition, Optional<Throwable>> elected = admin
                .electLeaders(ElectionType.PREFERRED, Set.of(p0)).partitions().get(30, TimeUnit.SECONDS);
            check(elected.get(p0).isPresent() && elected.get(p0).get() instanceof ElectionNotNeededException,
                "electLeaders(p0): " + elected);
            Map<TopicPartition, Optional<Throwable>> all = admin
                .electLeaders(ElectionType.PREFERRED, null).partitions().get(30, TimeUnit.SECONDS);
            check(all.isEmpty(), "electLeaders(all): " + all);
            TopicPartition missing = new TopicPartition(TOPIC, 7);
            Map<TopicPartition, Optional<Throwable>> none = admin
                .electLeaders(ElectionType.PREFERRED, Set.of(missing)).partitions().get(30, TimeUnit.SECONDS);
            check(none.get(missing).isPresent()
                    && none.get(missing).get() instanceof UnknownTopicOrPartitionException,
                "electLeaders(missing): " + none);
            System.out.println("electLeaders: election not needed");

            // 4. listPartitionReassignments.
            Map<TopicPartition, PartitionReassignment> reassigning = admin.listPartitionReassignments()
                .reassignments().get(30, TimeUnit.SECONDS);
            check(reassigning.isEmpty(), "reassignments: " + reassigning);
            reassigning = admin.listPartitionReassignments(Set.of(p0)).reassignments().get(30, TimeUnit.SECONDS);
            check(reassigning.isEmpty(), "reassignments of p0: " + reassigning);
            System.out.println("listPartitionReassignments: none");

            // 5. Broker configs.
            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(node));
            Config configs = admin.describeConfigs(List.of(broker)).all().get(30, TimeUnit.SECONDS).get(broker);
            Collection<ConfigEntry> entries = configs.entries();
            check(entries.size() >= 50, "only " + entries.size() + " broker configs");
            check(Integer.toString(node).equals(configs.get("node.id").value()), "node.id");
            for (String name : List.of("log.dirs", "listeners", "advertised.listeners", "num.partitions",
                    "offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                    "log.retention.ms", "log.segment.bytes", "message.max.bytes", "log.cleanup.policy",
                    "group.initial.rebalance.delay.ms", "transaction.max.timeout.ms", "min.insync.replicas")) {
                ConfigEntry e = configs.get(name);
                check(e != null && e.value() != null && !e.value().isEmpty(), "broker config " + name + ": " + e);
            }
            check("1".equals(configs.get("offsets.topic.replication.factor").value()), "offsets RF");
            System.out.println("broker configs: " + entries.size());

            // 6. message.format.version accepted and ignored.
            ConfigResource topic = new ConfigResource(ConfigResource.Type.TOPIC, TOPIC);
            admin.incrementalAlterConfigs(Map.of(topic, List.of(new AlterConfigOp(
                new ConfigEntry("message.format.version", "2.8"), AlterConfigOp.OpType.SET))))
                .all().get(30, TimeUnit.SECONDS);
            Config topicConfigs = admin.describeConfigs(List.of(topic)).all().get(30, TimeUnit.SECONDS).get(topic);
            check("2.8".equals(topicConfigs.get("message.format.version").value()),
                "message.format.version: " + topicConfigs.get("message.format.version"));
            System.out.println("message.format.version accepted");
        }
        System.out.println("OK");
    }
}
