"""Shared helpers for the durability checks (tests/tests/durability.rs).

Reading back uses kafka-python's consumer without a group (assign + seek_to_beginning), so
these checks need only Produce, Fetch, ListOffsets and Metadata from the broker.
"""

import sys
import time

from kafka import KafkaConsumer, TopicPartition


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def read_all(bootstrap, tps, timeout_s=120.0):
    """Read every record of `tps` from the log start to the end offset seen at the start.

    Returns (earliest, latest, records): earliest and latest map each TopicPartition to its
    ListOffsets answer, and records maps it to the list of ConsumerRecords read, in order.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="floe-durability-reader",
        request_timeout_ms=30000,
    )
    try:
        consumer.assign(tps)
        earliest = consumer.beginning_offsets(tps)
        latest = consumer.end_offsets(tps)
        consumer.seek_to_beginning(*tps)
        records = {tp: [] for tp in tps}
        pending = {tp for tp in tps if latest[tp] > earliest[tp]}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                got = {f"{tp.topic}-{tp.partition}": len(records[tp]) for tp in tps}
                fail(f"reading back timed out after {timeout_s} s; read {got}, end offsets {latest}")
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records[tp].extend(batch)
                if records[tp] and records[tp][-1].offset + 1 >= latest[tp]:
                    pending.discard(tp)
        return earliest, latest, records
    finally:
        consumer.close()


def topic_partitions(topics):
    """TopicPartitions of a {topic: partition_count} map, in a stable order."""
    return [TopicPartition(t, p) for t in sorted(topics) for p in range(topics[t])]
