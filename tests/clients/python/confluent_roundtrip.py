#!/usr/bin/env python3
"""confluent-kafka (librdkafka) produce/consume round trip against a Kafka-compatible broker.

Creates a topic with AdminClient, produces COUNT messages with random binary keys and values
(deterministic seed, varied sizes, some null keys, some empty values) with acks=all and the
idempotent producer, and records every delivery report. Then a consumer assigned to every
partition from the beginning (no group subscription, no commits) reads everything back and
checks, per partition and in order: offsets equal the delivery reports, keys and values are
byte-for-byte equal, and the total count is exact.

Exits 0 on success; on any mismatch prints what differed and exits 1.

Usage: confluent_roundtrip.py --bootstrap HOST:PORT --topic NAME [--count N]
       [--partitions P] [--compression none|gzip|snappy|lz4|zstd] [--seed S]
"""

import argparse
import random
import sys
import time
from collections import defaultdict

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic


class Mismatch(Exception):
    """A check failed; the message says what differed."""


def log(msg):
    print(f"[confluent_roundtrip] {msg}", file=sys.stderr, flush=True)


def make_messages(count, seed):
    """(key, value) pairs: binary, varied sizes, ~1% null keys, ~1% empty values."""
    rng = random.Random(seed)
    messages = []
    for i in range(count):
        r = rng.random()
        if r < 0.01:
            key = None
        else:
            key = rng.randbytes(rng.randint(0, 48)) + i.to_bytes(4, "big")
        r = rng.random()
        if r < 0.01:
            size = 0
        elif r < 0.02:
            size = rng.randint(4096, 32768)
        else:
            size = rng.randint(1, 1024)
        messages.append((key, rng.randbytes(size)))
    return messages


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=30,
        request_timeout=30,
    )
    futures[topic].result(timeout=60)
    meta = admin.list_topics(topic=topic, timeout=30)
    t = meta.topics.get(topic)
    if t is None or t.error is not None:
        raise Mismatch(f"topic {topic} not in metadata after create: {t and t.error}")
    if sorted(t.partitions) != list(range(partitions)):
        raise Mismatch(
            f"topic {topic} has partitions {sorted(t.partitions)}, expected 0..{partitions - 1}"
        )
    log(f"created {topic} with {partitions} partitions")


def produce(bootstrap, topic, messages, compression):
    """Produces all messages; returns [(partition, offset)] indexed like messages."""
    errors = []
    reports = [None] * len(messages)

    def on_error(err):
        # Logged only: librdkafka reports transient errors here and retries on its own;
        # a real failure shows as a failed delivery report below.
        log(f"producer error_cb: {err}")

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": compression,
            "linger.ms": 5,
            "message.timeout.ms": 120000,
            "error_cb": on_error,
        }
    )

    def delivered(index):
        def cb(err, msg):
            if err is not None:
                errors.append(f"message {index}: delivery failed: {err}")
            else:
                reports[index] = (msg.partition(), msg.offset())

        return cb

    start = time.monotonic()
    for i, (key, value) in enumerate(messages):
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=delivered(i))
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room.
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(180)
    elapsed = time.monotonic() - start
    if remaining:
        raise Mismatch(f"{remaining} messages still undelivered after flush")
    if errors:
        raise Mismatch(f"{len(errors)} delivery failures, first: {errors[:5]}")
    missing = [i for i, r in enumerate(reports) if r is None]
    if missing:
        raise Mismatch(f"{len(missing)} messages without a delivery report, first: {missing[:5]}")
    log(f"produced {len(messages)} messages in {elapsed:.1f}s")
    return reports


def expected_by_partition(messages, reports, partitions):
    """Per partition: [(offset, message index)] in offset order, checked for sanity."""
    by_partition = defaultdict(list)
    for i, (p, off) in enumerate(reports):
        if not 0 <= p < partitions:
            raise Mismatch(f"message {i} delivered to partition {p}, topic has {partitions}")
        by_partition[p].append((off, i))
    for p, entries in by_partition.items():
        entries.sort()
        offsets = [off for off, _ in entries]
        # A fresh topic written by one idempotent producer: offsets are 0..n-1 ...
        if offsets != list(range(len(offsets))):
            gaps = [(a, b) for a, b in zip(offsets, offsets[1:]) if b != a + 1]
            raise Mismatch(
                f"partition {p}: delivery offsets not contiguous from 0 "
                f"(first {offsets[:3]}, gaps {gaps[:5]})"
            )
        # ... and in produce order.
        indexes = [i for _, i in entries]
        if indexes != sorted(indexes):
            raise Mismatch(f"partition {p}: delivery offsets out of produce order")
    return by_partition


def consume(bootstrap, topic, partitions, want_counts):
    """Reads every partition from the beginning to want_counts[p]; returns messages per p."""
    errors = []

    def on_error(err):
        log(f"consumer error_cb: {err}")
        if err.fatal():
            errors.append(str(err))

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # confluent-kafka insists on a group id; it is never joined nor committed to.
            "group.id": f"{topic}-unused-group",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "error_cb": on_error,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = defaultdict(list)
    at_eof = set()
    deadline = time.monotonic() + 300
    start = time.monotonic()
    try:
        while len(at_eof) < partitions:
            if errors:
                raise Mismatch(f"consumer fatal error: {errors}")
            if time.monotonic() > deadline:
                counts = {p: len(got[p]) for p in range(partitions)}
                raise Mismatch(f"consume timed out: have {counts}, want {want_counts}")
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                err = msg.error()
                p = msg.partition()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        # Everything was acknowledged before consuming began, so the end
                        # of a partition must come after all of its messages.
                        if len(got[p]) < want_counts.get(p, 0):
                            raise Mismatch(
                                f"partition {p}: reached the end (offset {msg.offset()}) "
                                f"after {len(got[p])} messages, {want_counts[p]} were "
                                "acknowledged"
                            )
                        at_eof.add(p)
                        continue
                    raise Mismatch(f"consume error on partition {p}: {err}")
                got[p].append((msg.offset(), msg.key(), msg.value()))
    finally:
        consumer.close()
    log(f"consumed {sum(len(v) for v in got.values())} messages in "
        f"{time.monotonic() - start:.1f}s")
    return got


def check(messages, by_partition, got, partitions):
    total = 0
    for p in range(partitions):
        want = by_partition.get(p, [])
        have = got.get(p, [])
        if len(have) != len(want):
            raise Mismatch(f"partition {p}: consumed {len(have)} messages, produced {len(want)}")
        for (want_off, index), (off, key, value) in zip(want, have):
            want_key, want_value = messages[index]
            if off != want_off:
                raise Mismatch(
                    f"partition {p}: consumed offset {off} where delivery report said "
                    f"{want_off} (message {index})"
                )
            if key != want_key:
                raise Mismatch(
                    f"partition {p} offset {off}: key {key!r:.80} != produced {want_key!r:.80}"
                )
            if value != want_value:
                raise Mismatch(
                    f"partition {p} offset {off}: value of {len(value or b'')} bytes "
                    f"differs from produced {len(want_value)} bytes (message {index})"
                )
        total += len(have)
    if total != len(messages):
        raise Mismatch(f"consumed {total} messages in total, produced {len(messages)}")
    counts = {p: len(got.get(p, [])) for p in range(partitions)}
    log(f"all {total} messages match; per partition: {counts}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--compression", default="none")
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args()

    try:
        messages = make_messages(args.count, args.seed)
        create_topic(args.bootstrap, args.topic, args.partitions)
        reports = produce(args.bootstrap, args.topic, messages, args.compression)
        by_partition = expected_by_partition(messages, reports, args.partitions)
        used = sum(1 for p in range(args.partitions) if by_partition.get(p))
        if used < args.partitions:
            raise Mismatch(f"only {used} of {args.partitions} partitions received messages")
        want_counts = {p: len(v) for p, v in by_partition.items()}
        got = consume(args.bootstrap, args.topic, args.partitions, want_counts)
        check(messages, by_partition, got, args.partitions)
    except Mismatch as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
        return 1
    except KafkaException as e:
        print(f"FAIL: client error: {e}", file=sys.stderr, flush=True)
        return 1
    print(f"OK: {args.count} messages round-tripped through {args.partitions} partitions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
