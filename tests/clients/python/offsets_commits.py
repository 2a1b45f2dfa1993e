#!/usr/bin/env python3
"""Many offset commits of one group through confluent-kafka, for the compaction of
__consumer_offsets.

  commit     creates TOPIC (1 partition) and commits offsets 1..COUNT for group GROUP on it
             (asynchronous commits, at most ~2,000 outstanding, the last one synchronous);
             prints the rate.
  committed  prints the group's committed offset of TOPIC partition 0.

Usage: offsets_commits.py commit|committed --bootstrap HOST:PORT --topic T --group G [--count N]
"""

import argparse
import sys
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["commit", "committed"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--count", type=int, default=200_000)
    args = parser.parse_args()
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": False})
    tp = TopicPartition(args.topic, 0)
    if args.command == "commit":
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        admin.create_topics([NewTopic(args.topic, 1, 1)])[args.topic].result(30)
        errors = []
        done = [0]

        def on_commit(err, _partitions):
            done[0] += 1
            if err is not None:
                errors.append(err)

        consumer = Consumer(
            {
                "bootstrap.servers": args.bootstrap,
                "group.id": args.group,
                "enable.auto.commit": False,
                "on_commit": on_commit,
            }
        )
        start = time.time()
        for i in range(1, args.count):
            consumer.commit(offsets=[TopicPartition(args.topic, 0, i)], asynchronous=True)
            if i % 500 == 0:
                consumer.poll(0)
                # At most a few thousand commits outstanding: librdkafka's cost per queued
                # commit grows with the queue, so an unbounded backlog makes the client,
                # not the broker, take minutes (quadratic in the count).
                while i - done[0] > 2000:
                    consumer.poll(0.01)
        consumer.commit(offsets=[TopicPartition(args.topic, 0, args.count)], asynchronous=False)
        elapsed = time.time() - start
        consumer.poll(0)
        if errors:
            print(f"[offsets_commits] commit errors: {errors[:3]}", file=sys.stderr)
            sys.exit(1)
        print(f"COMMITTED {args.count} in {elapsed:.1f} s ({args.count / elapsed:.0f}/s)", flush=True)
    else:
        offset = consumer.committed([tp], timeout=30)[0].offset
        print(f"OFFSET {offset}", flush=True)
    consumer.close()


if __name__ == "__main__":
    main()
