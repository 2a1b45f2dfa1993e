"""Consume COUNT records as a group member, commit them synchronously, report where.

Usage: groups_offsets.py BOOTSTRAP GROUP TOPIC COUNT [--hold]

A confluent-kafka consumer subscribes to TOPIC in GROUP (session timeout 6 s, earliest
reset), processes exactly COUNT records, commits the next offset of each partition it read
with a synchronous commit, and prints one JSON line once the commit is acknowledged:
  {"first": {"<partition>": first offset read}, "committed": {"<partition>": offset}}
Without --hold it then closes (LeaveGroup) and exits; with --hold it stays in the group,
reading stdin until EOF, so the test can kill the broker while this member is alive.
"""

import json
import sys

from confluent_kafka import Consumer, TopicPartition


def main():
    bootstrap, group, topic, count = sys.argv[1:5]
    count = int(count)
    hold = "--hold" in sys.argv[5:]
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
    })
    consumer.subscribe([topic])
    first, next_offsets, seen = {}, {}, 0
    while seen < count:
        for m in consumer.consume(num_messages=count - seen, timeout=0.5):
            if m.error():
                raise SystemExit(f"FAIL: consume error {m.error()}")
            first.setdefault(m.partition(), m.offset())
            next_offsets[m.partition()] = m.offset() + 1
            seen += 1
    result = consumer.commit(
        offsets=[TopicPartition(topic, p, n) for p, n in sorted(next_offsets.items())],
        asynchronous=False,
    )
    for tp in result:
        if tp.error:
            raise SystemExit(f"FAIL: commit of partition {tp.partition}: {tp.error}")
    print(json.dumps({"first": {str(p): o for p, o in first.items()},
                      "committed": {str(p): n for p, n in next_offsets.items()}}), flush=True)
    if hold:
        sys.stdin.read()
    consumer.close()


if __name__ == "__main__":
    main()
