"""Tableflow while the warehouse's S3 server is down (tests/tests/tableflow_outage.rs).

Subcommands (all take --bootstrap and --topic):
  create   create the topic: --partitions, configs as --config key=value (repeatable).
  produce  produce key_value records with acks=all, keys "0", "1", ... from --first-id, and
           append each acknowledged one to --ack-log as "partition offset key": --count
           records (waits for every acknowledgement), or, with --stop-file, at about --rate
           records a second until that file exists (then waits for what is in flight).
           Prints "PRODUCED acked=N failed=M" and exits non-zero if any delivery failed.
  verify   wait until the table holds every acknowledged record of --ack-log, then read it
           with pyiceberg and DuckDB (iceberg_scan over S3): each (partition, offset) exactly
           once, with the acknowledged key, and nothing else. With --gap P:COUNT:FROM, exactly
           COUNT acknowledged offsets of partition P (one run, all at or after FROM) are
           missing: the records retention deleted before they were materialized.
           Needs --data-dir and the S3 settings (--s3-endpoint, --s3-key, --s3-secret).
Exits non-zero with the first mismatch on stderr.
"""

import argparse
import json
import os
import sys
import tempfile
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def cmd_create(args):
    configs = dict(c.split("=", 1) for c in args.config)
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    fs = admin.create_topics(
        [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1, config=configs)]
    )
    for f in fs.values():
        try:
            f.result(30)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    print(f"CREATED {args.topic}")


def cmd_produce(args):
    ack_log = open(args.ack_log, "a")
    failed = []
    acked = [0]

    def on_delivery(err, msg):
        if err is not None:
            failed.append(err)
            return
        ack_log.write(f"{msg.partition()} {msg.offset()} {msg.key().decode()}\n")
        acked[0] += 1

    p = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    i = args.first_id
    start = time.monotonic()
    while True:
        if args.stop_file:
            if os.path.exists(args.stop_file):
                break
            ahead = (i - args.first_id) / args.rate - (time.monotonic() - start)
            if ahead > 0:
                p.poll(ahead)
        elif i - args.first_id >= args.count:
            break
        key = str(i).encode()
        value = b'{"id": %d, "pad": "%s"}' % (i, b"x" * 64)
        try:
            p.produce(args.topic, key=key, value=value, on_delivery=on_delivery)
        except BufferError:
            p.poll(0.1)
            continue
        p.poll(0)
        i += 1
    left = p.flush(120)
    ack_log.close()
    print(f"PRODUCED acked={acked[0]} failed={len(failed)} unflushed={left}", flush=True)
    if left or failed:
        fail(f"produce: {left} unflushed, errors {failed[:3]}")


def read_acks(path):
    acks = {}
    with open(path) as f:
        for line in f:
            partition, offset, key = line.split()
            pk = (int(partition), int(offset))
            if pk in acks:
                fail(f"acknowledged twice: {pk}")
            acks[pk] = key
    return acks


def catalog(args):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        "floe",
        **{
            "uri": f"sqlite:///{args.data_dir}/iceberg/catalog.db",
            "warehouse": "s3://warehouse/floe",
            "s3.endpoint": args.s3_endpoint,
            "s3.access-key-id": args.s3_key,
            "s3.secret-access-key": args.s3_secret,
            "s3.region": "us-east-1",
        },
    )


def parse_gap(args):
    """(partition, count, first) of --gap, or None."""
    if not args.gap:
        return None
    partition, count, first = (int(x) for x in args.gap.split(":"))
    return partition, count, first


def table_rows(args):
    """(table, {(partition, offset): [keys]}, {partition: next offset}) of the table's
    current snapshot; (None, None, None) if it cannot be read yet."""
    try:
        t = catalog(args).load_table(f"default.{args.topic}")
    except Exception:  # noqa: BLE001 - not created yet or not readable yet
        return None, None, None
    snapshot = t.current_snapshot()
    if snapshot is None:
        return t, {}, {}
    rows = {}
    for r in t.scan(selected_fields=("partition", "offset", "key")).to_arrow().to_pylist():
        rows.setdefault((r["partition"], r["offset"]), []).append(r["key"].decode())
    next_offsets = {int(p): o for p, o in json.loads(snapshot.summary.get("floe.next-offsets") or "{}").items()}
    return t, rows, next_offsets


def check(acks, rows, next_offsets, gap):
    """(why the rows are not yet right or None, whether that is final). The rows must be
    exactly the acknowledged records, less the gap; a table only gains rows, so a row twice,
    a row never acknowledged, fewer missing than the gap, or a record missing below the
    offsets the table says it has consumed can never come right."""
    doubled = [pk for pk, keys in rows.items() if len(keys) > 1]
    if doubled:
        return f"{len(doubled)} records twice, e.g. {sorted(doubled)[:5]}", True
    extra = [pk for pk in rows if pk not in acks]
    if extra:
        return f"{len(extra)} rows never acknowledged, e.g. {sorted(extra)[:5]}", True
    wrong = [pk for pk, keys in rows.items() if keys[0] != acks[pk]]
    if wrong:
        return f"{len(wrong)} rows with another key, e.g. {sorted(wrong)[:5]}", True
    missing = sorted(pk for pk in acks if pk not in rows)
    count = gap[1] if gap else 0
    if len(missing) > count:
        lost = [(p, o) for p, o in missing if o < next_offsets.get(p, 0)]
        final = len(lost) > count
        return f"{len(missing)} acknowledged records missing ({count} deleted), {len(lost)} of them below the table's offsets {next_offsets}, e.g. {(lost or missing)[:5]}", final
    if len(missing) < count:
        return f"only {len(missing)} records missing, but {count} were deleted: {missing[:5]}", True
    if gap:
        partition, count, first = gap
        offsets = [o for _, o in missing]
        run = list(range(offsets[0], offsets[0] + count)) if offsets else []
        if any(p != partition for p, _ in missing) or (offsets and offsets[0] < first) or offsets != run:
            return f"the missing records are not one run at or after {first}: {missing[:3]}...{missing[-3:]}", True
    return None, False


def duckdb_check(args, table, acks, gap):
    import duckdb
    import duckdb_extensions

    con = duckdb.connect(config={"extension_directory": tempfile.mkdtemp(prefix="duckdb-ext-")})
    for ext in ("avro", "iceberg", "httpfs"):
        duckdb_extensions.import_extension(ext, con=con)
    endpoint = args.s3_endpoint.split("://", 1)[1]
    con.execute(
        f"CREATE SECRET s3 (TYPE S3, KEY_ID '{args.s3_key}', SECRET '{args.s3_secret}', "
        f"REGION 'us-east-1', ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)"
    )
    loc = table.metadata_location
    # Each value starts with its key's id: the row is the record it claims to be.
    n, distinct, key_mismatch = con.execute(
        f"""SELECT count(*), count(DISTINCT ("partition", "offset")),
                  count(*) FILTER (WHERE NOT starts_with(decode(value),
                                                         '{{"id": ' || decode(key) || ','))
           FROM iceberg_scan('{loc}')"""
    ).fetchone()
    want = len(acks) - (gap[1] if gap else 0)
    if (n, distinct, key_mismatch) != (want, want, 0):
        fail(f"duckdb: {n} rows, {distinct} distinct (partition, offset), {key_mismatch} keys unlike their values; want {want}")
    print(f"duckdb: {n} rows, each (partition, offset) once", flush=True)


def cmd_verify(args):
    acks = read_acks(args.ack_log)
    gap = parse_gap(args)
    deadline = time.time() + args.timeout
    why = "table not readable"
    while True:
        table, rows, next_offsets = table_rows(args)
        if rows is not None:
            why, final = check(acks, rows, next_offsets, gap)
            if why is None:
                break
            if final:
                fail(f"pyiceberg: {why}")
        if time.time() > deadline:
            fail(f"pyiceberg after {args.timeout}s: {why}")
        time.sleep(1)
    print(f"pyiceberg: {len(rows)} rows, every acknowledged record exactly once"
          + (f" but the {gap[1]} deleted before they were materialized" if gap else ""), flush=True)
    duckdb_check(args, table, acks, gap)
    print(f"OK: exactly once {len(rows)}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["create", "produce", "verify"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--ack-log")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--first-id", type=int, default=0)
    ap.add_argument("--stop-file")
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--gap")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--data-dir")
    ap.add_argument("--s3-endpoint")
    ap.add_argument("--s3-key")
    ap.add_argument("--s3-secret")
    args = ap.parse_args()
    if args.data_dir:
        args.data_dir = os.path.abspath(args.data_dir)
    {"create": cmd_create, "produce": cmd_produce, "verify": cmd_verify}[args.command](args)


if __name__ == "__main__":
    main()
