"""Admin answers tools rely on, as a single-node Kafka broker gives them
(tests/tests/admin_compat.rs).

usage: admin_compat.py BOOTSTRAP

1. kafka-python describe_configs for the broker, config_filter='all': Kafka's broker config
   names with this broker's values and sources (log.dirs set, delete.topic.enable default);
   the default filter ('modified', dynamic configs only) lists none, as on a fresh Kafka.
2. kafka-python alter_configs (AlterConfigs) and confluent-kafka incremental_alter_configs
   with message.format.version / message.downconversion.enable: accepted, as Kafka 3.x
   accepts them; describe shows the values.
3. confluent-kafka commit of offsets for a topic that does not exist and a partition past a
   topic's count: UNKNOWN_TOPIC_OR_PART for those, while the real partition of the same
   request is committed.

Prints OK on success; on a mismatch prints "FAIL: ..." and exits with status 1.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource as CKResource,
    NewTopic,
)
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

TOPIC = "compat"


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def main():
    bootstrap = sys.argv[1]
    ck = AdminClient({"bootstrap.servers": bootstrap})
    ck.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])[TOPIC].result()
    kp = KafkaAdminClient(bootstrap_servers=bootstrap)

    # 1. Broker configs.
    node = str(kp.describe_cluster()["controller_id"])
    every = kp.describe_configs([ConfigResource(ConfigResourceType.BROKER, node)], config_filter="all")
    configs = every["broker"][node]
    if len(configs) < 50:
        fail(f"only {len(configs)} broker configs: {sorted(configs)}")
    for name, want in [("node.id", node), ("offsets.topic.replication.factor", "1"),
                       ("default.replication.factor", "1"), ("log.cleanup.policy", "delete")]:
        if configs.get(name, {}).get("value") != want:
            fail(f"broker config {name} = {configs.get(name)}, want {want}")
    for name in ["log.dirs", "listeners", "advertised.listeners", "log.retention.ms",
                 "log.segment.bytes", "num.partitions", "transaction.max.timeout.ms",
                 "group.initial.rebalance.delay.ms", "auto.create.topics.enable"]:
        if not configs.get(name, {}).get("value"):
            fail(f"broker config {name} missing: {configs.get(name)}")
    # Sources as Kafka gives them: set in the config (STATIC_BROKER_CONFIG) or a default.
    if configs["log.dirs"]["config_source"] != "STATIC_BROKER_CONFIG":
        fail(f"log.dirs source: {configs['log.dirs']}")
    if configs["delete.topic.enable"]["config_source"] != "DEFAULT_CONFIG":
        fail(f"delete.topic.enable source: {configs['delete.topic.enable']}")
    # The default filter ('modified') lists dynamic configs only: none, as on a fresh Kafka.
    modified = kp.describe_configs([ConfigResource(ConfigResourceType.BROKER, node)])["broker"][node]
    if modified:
        fail(f"'modified' filter: {sorted(modified)}")
    print(f"broker configs: {len(configs)}", flush=True)

    # 2. message.format.version accepted and ignored (AlterConfigs and Incremental).
    kp.alter_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC,
                                     configs={"message.format.version": "2.8"})])
    res = CKResource("topic", TOPIC, incremental_configs=[
        ConfigEntry("message.downconversion.enable", "false",
                    incremental_operation=AlterConfigOpType.SET)])
    for f in ck.incremental_alter_configs([res]).values():
        f.result()
    described = ck.describe_configs([CKResource("topic", TOPIC)])
    topic_configs = list(described.values())[0].result()
    if topic_configs["message.format.version"].value != "2.8":
        fail(f"message.format.version = {topic_configs['message.format.version'].value}")
    if topic_configs["message.downconversion.enable"].value != "false":
        fail("message.downconversion.enable not kept")
    print("message.format.version and message.downconversion.enable accepted", flush=True)

    # 3. OffsetCommit for partitions that do not exist.
    reports = []
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compat-group",
                         "enable.auto.commit": False,
                         "on_commit": lambda err, partitions: reports.append(partitions)})
    consumer.commit(offsets=[
        TopicPartition("no-such-topic", 0, 5),
        TopicPartition(TOPIC, 9, 5),
        TopicPartition(TOPIC, 1, 7),
    ], asynchronous=True)
    deadline = time.time() + 30
    while not reports and time.time() < deadline:
        consumer.poll(0.2)
    if not reports:
        fail("no commit report")
    by_tp = {(r.topic, r.partition): r.error for r in reports[0]}
    for tp in [("no-such-topic", 0), (TOPIC, 9)]:
        err = by_tp.get(tp)
        if err is None or err.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            fail(f"commit to {tp}: {err}, want UNKNOWN_TOPIC_OR_PART")
    # librdkafka copies a request's first partition error onto every partition of its
    # report; what the broker did with the real partition shows in what is committed.
    got = consumer.committed([TopicPartition(TOPIC, 1)], timeout=30)
    if got[0].offset != 7:
        fail(f"committed offset of {TOPIC}-1 is {got[0].offset}, want 7")
    consumer.close()
    print("commits to unknown partitions answered UNKNOWN_TOPIC_OR_PARTITION", flush=True)
    print("OK", flush=True)


if __name__ == "__main__":
    main()
