#!/usr/bin/env python3
"""Tiered storage checks through confluent-kafka (librdkafka) against a broker whose topic
is tiered to an S3 server.

Records are deterministic, so a reader can check every byte without keeping what was
written: record i has key b"k<i>", timestamp TS_BASE + i and a value of --size bytes (its
index, then a slice of a fixed pseudo-random block chosen by i).

Subcommands (each exits 1 with the reason on the first mismatch):

  create   create --topic (1 partition) with the --config k=v settings.
  alter    set --config k=v on --topic (IncrementalAlterConfigs).
  produce  produce records --start .. --start+--count with acks=all; prints PRODUCED n.
  consume  read --count records from offset --start and check offset, key, value and
           timestamp of each; prints OK consume n BYTES b.
  offsets  ListOffsets: LOW, HIGH and, with --ts, OFFSET of the first record at or after it.
  table    enable table.enable (key_value mode) on --topic and wait until the Iceberg table
           (pyiceberg, SQL catalog in --data-dir) holds offsets 0 .. --count - 1 exactly once.

Usage: tiered_check.py SUBCOMMAND --bootstrap HOST:PORT --topic NAME [...]
"""

import argparse
import random
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

BLOCK = random.Random(405).randbytes(1 << 20)


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def log(msg):
    print(f"[tiered_check] {msg}", file=sys.stderr, flush=True)


def key(i):
    return b"k%d" % i


def value(i, size):
    head = b"%012d" % i
    n = max(size - len(head), 0)
    at = (i * 7919) % (len(BLOCK) - n)
    return head + BLOCK[at : at + n]


def configs(args):
    out = {}
    for item in args.config:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def admin(args):
    return AdminClient({"bootstrap.servers": args.bootstrap})


def cmd_create(args):
    a = admin(args)
    fs = a.create_topics([NewTopic(args.topic, 1, 1, config=configs(args))])
    fs[args.topic].result(30)
    print(f"CREATED {args.topic}")


def cmd_alter(args):
    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        args.topic,
        incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in configs(args).items()
        ],
    )
    a = admin(args)
    for f in a.incremental_alter_configs([res]).values():
        f.result(30)
    print(f"ALTERED {args.topic}")


def cmd_produce(args):
    p = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            # In order across retries: past log.local.hard.limit.bytes the broker refuses
            # appends (retriable) until uploads catch up.
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": 1 << 20,
            "compression.type": "none",
            "message.timeout.ms": 600_000,
            "queue.buffering.max.kbytes": 256 * 1024,
        }
    )
    errors = []
    acked = [0]

    def cb(err, _msg):
        if err is not None:
            errors.append(err)
        else:
            acked[0] += 1

    started = time.time()
    for i in range(args.start, args.start + args.count):
        while True:
            try:
                p.produce(
                    args.topic,
                    key=key(i),
                    value=value(i, args.size),
                    timestamp=args.ts_base + i,
                    on_delivery=cb,
                )
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(600)
    if left or errors:
        fail(f"produce: {left} unflushed, errors {errors[:3]}")
    log(f"produced {args.count} records in {time.time() - started:.1f}s")
    print(f"PRODUCED {acked[0]}")


def consumer(args):
    return Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "tiered-check",
            "enable.auto.commit": False,
            "fetch.max.bytes": 16 << 20,
            "max.partition.fetch.bytes": 8 << 20,
            "queued.max.messages.kbytes": 64 * 1024,
        }
    )


def cmd_consume(args):
    c = consumer(args)
    c.assign([TopicPartition(args.topic, 0, args.start)])
    expected = args.start
    end = args.start + args.count
    total = 0
    deadline = time.time() + args.timeout
    started = time.time()
    while expected < end:
        if time.time() > deadline:
            fail(f"consume: at offset {expected} of {end} after {args.timeout}s")
        msgs = c.consume(1000, 1.0)
        for m in msgs:
            if m.error():
                fail(f"consume: error {m.error()} at {expected}")
            if m.offset() != expected:
                fail(f"consume: offset {m.offset()}, expected {expected}")
            if m.key() != key(expected):
                fail(f"consume: key {m.key()!r} at {expected}")
            if m.value() != value(expected, args.size):
                fail(f"consume: value of {expected} differs ({len(m.value() or b'')} bytes)")
            ts_type, ts = m.timestamp()
            if ts != args.ts_base + expected:
                fail(f"consume: timestamp {ts} at {expected}")
            total += len(m.value())
            expected += 1
            if expected == end:
                break
    c.close()
    secs = time.time() - started
    log(f"consumed {args.count} records ({total} value bytes) in {secs:.1f}s")
    print(f"OK consume {args.count} BYTES {total}")


def cmd_offsets(args):
    c = consumer(args)
    tp = TopicPartition(args.topic, 0)
    low, high = c.get_watermark_offsets(tp, timeout=30, cached=False)
    print(f"LOW {low} HIGH {high}")
    if args.ts is not None:
        found = c.offsets_for_times([TopicPartition(args.topic, 0, args.ts)], timeout=60)
        print(f"OFFSET {found[0].offset}")
    c.close()


def cmd_table(args):
    from pyiceberg.catalog.sql import SqlCatalog

    cmd_alter_with(args, {"table.enable": "true", "table.mode": "key_value", "table.commit.interval.ms": "500"})
    cat = SqlCatalog(
        "floe",
        uri=f"sqlite:///{args.data_dir}/iceberg/catalog.db",
        warehouse=f"file://{args.data_dir}/iceberg/warehouse",
    )
    deadline = time.time() + args.timeout
    rows = []
    while time.time() < deadline:
        try:
            t = cat.load_table(f"default.{args.topic}")
            if t.current_snapshot() is not None:
                rows = t.scan(selected_fields=("offset", "key")).to_arrow().to_pylist()
                if len(rows) >= args.count:
                    break
        except Exception:  # noqa: BLE001 - the table is not created yet
            pass
        time.sleep(0.5)
    offsets = sorted(r["offset"] for r in rows)
    if offsets != list(range(args.count)):
        fail(f"table: {len(rows)} rows, offsets {offsets[:3]}..{offsets[-3:]}, wanted 0..{args.count}")
    for r in rows:
        if r["key"] != key(r["offset"]):
            fail(f"table: key {r['key']!r} at offset {r['offset']}")
    print(f"OK table {len(rows)}")


def cmd_alter_with(args, values):
    args.config = [f"{k}={v}" for k, v in values.items()]
    cmd_alter(args)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["create", "alter", "produce", "consume", "offsets", "table"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--ts-base", type=int, default=1_700_000_000_000)
    ap.add_argument("--ts", type=int)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    try:
        {
            "create": cmd_create,
            "alter": cmd_alter,
            "produce": cmd_produce,
            "consume": cmd_consume,
            "offsets": cmd_offsets,
            "table": cmd_table,
        }[args.command](args)
    except KafkaException as e:
        fail(f"{args.command}: {e}")


if __name__ == "__main__":
    main()
