"""Group administration and offset look-ups for the consumer-group tests, as JSON on stdout.

Usage:
  groups_admin.py committed BOOTSTRAP GROUP TOPIC PARTITIONS
      committed offsets seen by a fresh consumer of GROUP that does not join it:
      {"<partition>": offset or null}
  groups_admin.py lag BOOTSTRAP GROUP TOPIC PARTITIONS
      AdminClient list_consumer_group_offsets against list_offsets(latest):
      {"<partition>": {"committed": n or null, "high": n, "lag": n}}
  groups_admin.py list BOOTSTRAP
      list_consumer_groups: [{"group": id, "state": name, "type": name}]
  groups_admin.py describe BOOTSTRAP GROUP
      describe_consumer_groups: {"state", "type", "protocol", "members": [{"member_id",
      "client_id", "instance_id", "assignment": [partition, ...]}]}
  groups_admin.py delete BOOTSTRAP GROUP
      delete_consumer_groups: {"error": null or the Kafka error name}
"""

import json
import sys

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

TIMEOUT = 30


def committed(bootstrap, group, topic, partitions):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                             timeout=TIMEOUT)
    consumer.close()
    out = {}
    for tp in tps:
        if tp.error:
            raise SystemExit(f"FAIL: committed offset of partition {tp.partition}: {tp.error}")
        out[str(tp.partition)] = tp.offset if tp.offset >= 0 else None
    return out


def lag(admin, group, topic, partitions):
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    request = [ConsumerGroupTopicPartitions(group, tps)]
    result = admin.list_consumer_group_offsets(request, request_timeout=TIMEOUT)[group]
    committed = {tp.partition: tp.offset for tp in result.result(TIMEOUT).topic_partitions}
    latest = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps},
                                request_timeout=TIMEOUT)
    out = {}
    for tp, future in latest.items():
        high = future.result(TIMEOUT).offset
        c = committed.get(tp.partition, -1001)
        c = c if c >= 0 else None
        out[str(tp.partition)] = {"committed": c, "high": high,
                                  "lag": high - (c if c is not None else 0)}
    return out


def list_groups(admin):
    result = admin.list_consumer_groups(request_timeout=TIMEOUT).result(TIMEOUT)
    if result.errors:
        raise SystemExit(f"FAIL: list_consumer_groups errors {result.errors}")
    return sorted(
        ({"group": g.group_id, "state": g.state.name, "type": g.type.name}
         for g in result.valid),
        key=lambda g: g["group"],
    )


def describe(admin, group):
    d = admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group].result(TIMEOUT)
    return {
        "state": d.state.name,
        "type": d.type.name,
        "protocol": d.partition_assignor,
        "members": sorted(
            ({"member_id": m.member_id, "client_id": m.client_id,
              "instance_id": m.group_instance_id,
              "assignment": sorted(tp.partition for tp in m.assignment.topic_partitions)}
             for m in d.members),
            key=lambda m: m["assignment"],
        ),
    }


def delete(admin, group):
    try:
        admin.delete_consumer_groups([group], request_timeout=TIMEOUT)[group].result(TIMEOUT)
        return {"error": None}
    except KafkaException as e:
        return {"error": e.args[0].name()}


def main():
    cmd, bootstrap = sys.argv[1], sys.argv[2]
    rest = sys.argv[3:]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if cmd == "committed":
        out = committed(bootstrap, rest[0], rest[1], int(rest[2]))
    elif cmd == "lag":
        out = lag(admin, rest[0], rest[1], int(rest[2]))
    elif cmd == "list":
        out = list_groups(admin)
    elif cmd == "describe":
        out = describe(admin, rest[0])
    elif cmd == "delete":
        out = delete(admin, rest[0])
    else:
        raise SystemExit(f"unknown command {cmd}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
