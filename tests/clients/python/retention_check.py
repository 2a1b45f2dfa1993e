#!/usr/bin/env python3
"""Retention and DeleteRecords through confluent-kafka (librdkafka) against a broker whose
retention check runs every few hundred milliseconds.

Subcommands (each creates its own topic; every check failure exits 1 with the reason):

  time    retention.ms: 100 records stamped an hour ago expire (the low watermark reaches
          the end), then consumers whose committed offset (50) is below the start reset per
          auto.offset.reset: earliest reads the first new record, latest only records
          produced after the reset.
  size    retention.bytes: the low watermark moves and a consumer resetting to earliest
          starts there.
  delete  DeleteRecords through AdminClient.delete_records: the low watermark moves to the
          requested offset, then to the high watermark (-1); fetches start at it.
  keyless a record without a key to a cleanup.policy=compact topic fails with INVALID_RECORD
          in its delivery report; keyed records around it are stored.
  low     prints the partition's low and high watermarks (after a restart).

Usage: retention_check.py SUBCOMMAND --bootstrap HOST:PORT --topic NAME
"""

import argparse
import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic


class Failed(Exception):
    """A check failed; the message says how."""


def log(msg):
    print(f"[retention_check] {msg}", file=sys.stderr, flush=True)


def create(admin, topic, configs):
    futures = admin.create_topics([NewTopic(topic, 1, 1, config=configs)])
    futures[topic].result(30)


def produce(bootstrap, topic, count, start, timestamp_ms=None, size=100):
    # One record per batch, so that 1 KiB segments roll every few records.
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "batch.num.messages": 1}
    )
    offsets = []

    def delivered(err, msg):
        if err is not None:
            raise Failed(f"delivery failed: {err}")
        offsets.append(msg.offset())

    for i in range(count):
        kwargs = {"timestamp": timestamp_ms} if timestamp_ms is not None else {}
        value = f"{start + i:08d}".encode() + b"x" * (size - 8)
        producer.produce(topic, value=value, key=str(start + i).encode(), on_delivery=delivered, **kwargs)
        producer.poll(0)
    if producer.flush(30) != 0:
        raise Failed("produce did not finish")
    return offsets


def watermarks(bootstrap, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        consumer.close()


def wait_low(bootstrap, topic, predicate, what, timeout=60):
    deadline = time.time() + timeout
    while True:
        low, high = watermarks(bootstrap, topic)
        if predicate(low, high):
            return low, high
        if time.time() > deadline:
            raise Failed(f"{what}: watermarks still ({low}, {high})")
        time.sleep(0.2)


def commit(bootstrap, topic, group, offset):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def consumer_for(bootstrap, group, reset):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": reset,
            "enable.auto.commit": False,
        }
    )


def first_message(consumer, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise Failed(f"{what}: consumer error {msg.error()}")
        return msg
    raise Failed(f"{what}: no message within {timeout} s")


def check_time(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create(admin, topic, {"segment.bytes": "1024", "retention.ms": "60000", "file.delete.delay.ms": "500"})
    hour_ago = int(time.time() * 1000) - 3600 * 1000
    produce(bootstrap, topic, 100, 0, timestamp_ms=hour_ago)
    for group in ("ret-earliest", "ret-latest"):
        commit(bootstrap, topic, group, 50)
    low, high = wait_low(bootstrap, topic, lambda lo, hi: lo == 100, "time retention")
    print(f"LOW {low} HIGH {high}", flush=True)

    produce(bootstrap, topic, 20, 100)
    earliest = consumer_for(bootstrap, "ret-earliest", "earliest")
    earliest.assign([TopicPartition(topic, 0)])
    msg = first_message(earliest, "earliest reset")
    earliest.close()
    if msg.offset() != 100 or not msg.value().startswith(b"00000100"):
        raise Failed(f"earliest reset read offset {msg.offset()} first")

    # latest: the reset skips 100..119, which exist when it happens; records produced while
    # the consumer waits arrive (one every 0.3 s until the first is read).
    latest = consumer_for(bootstrap, "ret-latest", "latest")
    latest.assign([TopicPartition(topic, 0)])
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    deadline = time.time() + 30
    msg = None
    while msg is None:
        if time.time() > deadline:
            raise Failed("latest reset: nothing read within 30 s")
        producer.produce(topic, value=b"after-reset")
        producer.flush(10)
        msg = latest.poll(0.3)
        if msg is not None and msg.error():
            raise Failed(f"latest reset: consumer error {msg.error()}")
    latest.close()
    if msg.offset() < 120 or msg.value() != b"after-reset":
        raise Failed(f"latest reset read offset {msg.offset()} ({msg.value()[:8]!r}) first")
    print("OK time", flush=True)


def check_size(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create(
        admin,
        topic,
        {"segment.bytes": "1024", "retention.bytes": "4096", "retention.ms": "-1", "file.delete.delay.ms": "500"},
    )
    commit(bootstrap, topic, "ret-size", 0)
    produce(bootstrap, topic, 300, 0)
    low, high = wait_low(bootstrap, topic, lambda lo, hi: lo > 0 and hi == 300, "size retention")
    print(f"LOW {low} HIGH {high}", flush=True)
    consumer = consumer_for(bootstrap, "ret-size", "earliest")
    consumer.assign([TopicPartition(topic, 0)])
    msg = first_message(consumer, "earliest reset after size retention")
    consumer.close()
    # Retention may have moved on between the two reads; never below what was reported.
    if msg.offset() < low or not msg.value().startswith(f"{msg.offset():08d}".encode()):
        raise Failed(f"read offset {msg.offset()} first, low watermark was {low}")
    print("OK size", flush=True)


def check_delete(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create(admin, topic, {"segment.bytes": "1024", "retention.ms": "-1"})
    produce(bootstrap, topic, 100, 0)
    result = admin.delete_records([TopicPartition(topic, 0, 40)])
    deleted = list(result.values())[0].result(30)
    if deleted.low_watermark != 40:
        raise Failed(f"delete_records answered low watermark {deleted.low_watermark}")
    low, high = watermarks(bootstrap, topic)
    if (low, high) != (40, 100):
        raise Failed(f"watermarks after delete_records: ({low}, {high})")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ret-delete", "auto.offset.reset": "error"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    msg = first_message(consumer, "fetch after delete_records")
    consumer.close()
    if msg.offset() != 40:
        raise Failed(f"fetch from the beginning read offset {msg.offset()} first")
    print("LOW 40", flush=True)
    result = admin.delete_records([TopicPartition(topic, 0, OFFSET_END)])
    deleted = list(result.values())[0].result(30)
    if deleted.low_watermark != 100:
        raise Failed(f"delete_records(-1) answered low watermark {deleted.low_watermark}")
    print("OK delete", flush=True)


def check_keyless(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create(admin, topic, {"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    reports = []

    def delivered(err, msg):
        reports.append((err, msg.offset()))

    for key in (b"k1", None, b"k2"):
        producer.produce(topic, key=key, value=b"v", on_delivery=delivered)
        # One record per request, so the keyless one fails alone.
        if producer.flush(30) != 0:
            raise Failed("produce did not finish")
    (ok1, off1), (bad, _), (ok2, off2) = reports
    if ok1 is not None or ok2 is not None or (off1, off2) != (0, 1):
        raise Failed(f"keyed records: {reports}")
    if bad is None or bad.code() != KafkaError.INVALID_RECORD:
        raise Failed(f"keyless record: {bad}")
    log(f"keyless record refused: {bad}")
    print("OK keyless", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["time", "size", "delete", "keyless", "low"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()
    try:
        if args.command == "time":
            check_time(args.bootstrap, args.topic)
        elif args.command == "size":
            check_size(args.bootstrap, args.topic)
        elif args.command == "delete":
            check_delete(args.bootstrap, args.topic)
        elif args.command == "keyless":
            check_keyless(args.bootstrap, args.topic)
        else:
            low, high = watermarks(args.bootstrap, args.topic)
            print(f"LOW {low} HIGH {high}", flush=True)
    except Failed as e:
        log(f"FAILED: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
