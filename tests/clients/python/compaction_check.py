#!/usr/bin/env python3
"""Compaction through confluent-kafka (librdkafka) against a broker whose cleaner and
retention passes run every few hundred milliseconds.

  produce  creates TOPIC (cleanup.policy=compact, 64 KiB segments, segment.ms 1 s so the
           quiet active segment rolls and is cleaned too, delete.retention.ms from
           --delete-retention-ms) and produces COUNT records over KEYS keys (key-<i % KEYS>,
           value v-<i>); the last record of every 50th key is a tombstone. Offsets are 0..COUNT-1.
  check    reads the partition from the start to the high watermark until it holds exactly
           the latest record of every key at its original offset (--tombstones kept: the
           tombstones are there; gone: they are not), or fails after --timeout seconds.

Usage: compaction_check.py produce|check --bootstrap HOST:PORT --topic NAME [--count N]
       [--keys K] [--compression none|gzip|snappy|lz4|zstd] [--delete-retention-ms MS]
       [--tombstones kept|gone] [--timeout S]
"""

import argparse
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


class Failed(Exception):
    """A check failed; the message says how."""


def log(msg):
    print(f"[compaction_check] {msg}", file=sys.stderr, flush=True)


def record(i, count, keys):
    key = i % keys
    last_of_key = i + keys >= count
    value = None if last_of_key and key % 50 == 7 else f"v-{i}".encode()
    return f"key-{key}".encode(), value


def produce(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": "65536",
        "segment.ms": "1000",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": str(args.delete_retention_ms),
        "file.delete.delay.ms": "1000",
    }
    admin.create_topics([NewTopic(args.topic, 1, 1, config=configs)])[args.topic].result(30)
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": args.compression,
        }
    )
    failures = []

    def delivered(err, msg):
        if err is not None:
            failures.append(err)

    for i in range(args.count):
        key, value = record(i, args.count, args.keys)
        while True:
            try:
                producer.produce(args.topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60) != 0 or failures:
        raise Failed(f"produce failed: {failures[:3]}")
    print(f"PRODUCED {args.count}", flush=True)


def read_all(args):
    consumer = Consumer(
        {"bootstrap.servers": args.bootstrap, "group.id": "compaction-check", "enable.auto.commit": False}
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(args.topic, 0), timeout=10, cached=False)
        consumer.assign([TopicPartition(args.topic, 0, OFFSET_BEGINNING)])
        out = []
        deadline = time.time() + 60
        while not out or out[-1][0] < high - 1:
            if time.time() > deadline:
                raise Failed(f"reading to the high watermark {high} timed out at {out[-1][0] if out else None}")
            msg = consumer.poll(0.5)
            if msg is None:
                if high == low:
                    break
                continue
            if msg.error():
                raise Failed(f"consumer error {msg.error()}")
            out.append((msg.offset(), msg.key(), msg.value()))
        return out
    finally:
        consumer.close()


def expected(args, tombstones_kept):
    latest = {}
    for i in range(args.count):
        key, value = record(i, args.count, args.keys)
        latest[key] = (i, value)
    return sorted(
        (offset, key, value)
        for key, (offset, value) in latest.items()
        if value is not None or tombstones_kept
    )


def check(args):
    want = expected(args, args.tombstones == "kept")
    deadline = time.time() + args.timeout
    while True:
        got = read_all(args)
        if got == want:
            print(f"COMPACTED {len(got)} records", flush=True)
            return
        if time.time() > deadline:
            extra = len(got) - len(want)
            first_diff = next((g for g, w in zip(got, want) if g != w), None)
            raise Failed(f"after {args.timeout} s: {len(got)} records ({extra:+} vs expected), first difference {first_diff}")
        time.sleep(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["produce", "check"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--compression", default="none")
    parser.add_argument("--delete-retention-ms", type=int, default=86_400_000)
    parser.add_argument("--tombstones", choices=["kept", "gone"], default="kept")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    try:
        if args.command == "produce":
            produce(args)
        else:
            check(args)
    except Failed as e:
        log(f"FAILED: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
