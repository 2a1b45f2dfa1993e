"""Tableflow end-to-end checks: produce with confluent-kafka, read the Iceberg tables back
with pyiceberg (SQL catalog over the broker's SQLite file), DuckDB (iceberg_scan with the
pip-bundled extension) and polars, and compare with what was produced.

Subcommands (all take --bootstrap, --data-dir, --topic):
  json        100,000 JSON records, 4 partitions, table.mode=json; all three engines.
  keyvalue    arbitrary binary keys, values and headers round-trip in key_value mode.
  produce     produce --count JSON records to a table topic and wait for the first commit
              (the crash test then kill -9s the broker).
  verify      wait until the table has --count rows; each (partition, offset) exactly once.
  backfill    data first, tables enabled later (IncrementalAlterConfigs), partitioned by
              identity(region), invalid records in the _dlq table.
Exits non-zero with the first mismatch on stderr.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

JSON_SCHEMA = {
    "type": "struct",
    "fields": [
        {"id": 1, "name": "id", "type": "long", "required": True},
        {"id": 2, "name": "name", "type": "string", "required": False},
        {"id": 3, "name": "amount", "type": "double", "required": False},
        {"id": 4, "name": "region", "type": "string", "required": False},
        {
            "id": 5,
            "name": "tags",
            "type": {"type": "list", "element-id": 6, "element": "string", "element-required": False},
            "required": False,
        },
        {
            "id": 7,
            "name": "loc",
            "type": {
                "type": "struct",
                "fields": [
                    {"id": 8, "name": "lat", "type": "double", "required": False},
                    {"id": 9, "name": "lon", "type": "double", "required": False},
                ],
            },
            "required": False,
        },
    ],
}
REGIONS = ["eu", "us", "ap"]


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def record(i):
    return {
        "id": i,
        "name": f"name-{i}",
        "amount": i * 0.25,
        "region": REGIONS[i % 3],
        "tags": [f"t{i % 7}", f"u{i % 5}"],
        "loc": {"lat": (i % 90) * 1.0, "lon": -((i % 180) * 1.0)},
    }


def admin(args):
    return AdminClient({"bootstrap.servers": args.bootstrap})


def create_topic(args, partitions, configs):
    a = admin(args)  # kept alive until the futures resolve
    fs = a.create_topics(
        [NewTopic(args.topic, num_partitions=partitions, replication_factor=1, config=configs)]
    )
    for f in fs.values():
        f.result(30)


def json_table_configs(interval_ms=1000, partition_by="none"):
    return {
        "table.enable": "true",
        "table.mode": "json",
        "table.json.schema": json.dumps(JSON_SCHEMA),
        "table.commit.interval.ms": str(interval_ms),
        "table.partition.by": partition_by,
    }


def produce(args, items):
    """items: iterable of (key, value, headers); waits for every acknowledgement."""
    p = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "linger.ms": 20,
            "batch.size": 1 << 20,
            "compression.type": args.compression,
        }
    )
    errors = []

    def cb(err, _msg):
        if err is not None:
            errors.append(err)

    for key, value, headers in items:
        while True:
            try:
                p.produce(args.topic, key=key, value=value, headers=headers, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(120)
    if left or errors:
        fail(f"produce: {left} unflushed, errors {errors[:3]}")


def catalog(args):
    from pyiceberg.catalog.sql import SqlCatalog

    props = {
        "uri": f"sqlite:///{args.data_dir}/iceberg/catalog.db",
        "warehouse": f"file://{args.data_dir}/iceberg/warehouse",
    }
    if args.s3_endpoint:
        props.update(
            {
                "s3.endpoint": args.s3_endpoint,
                "s3.access-key-id": "test",
                "s3.secret-access-key": "test",
                "s3.region": "us-east-1",
            }
        )
    return SqlCatalog("floe", **props)


def load(args, name):
    cat = catalog(args)
    try:
        return cat.load_table(f"default.{name}")
    except Exception:  # noqa: BLE001 - not created yet
        return None


def wait_rows(args, name, count, timeout=180):
    deadline = time.time() + timeout
    seen = -1
    while time.time() < deadline:
        t = load(args, name)
        if t is not None and t.current_snapshot() is not None:
            seen = t.scan().to_arrow().num_rows
            if seen >= count:
                return t
        time.sleep(0.5)
    fail(f"table {name}: {seen} rows after {timeout}s, wanted {count}")


def duckdb_connect(args):
    import duckdb
    import duckdb_extensions

    ext_dir = tempfile.mkdtemp(prefix="duckdb-ext-")
    con = duckdb.connect(config={"extension_directory": ext_dir})
    # iceberg needs avro; import both from the pip bundles (an autoload would download).
    duckdb_extensions.import_extension("avro", con=con)
    duckdb_extensions.import_extension("iceberg", con=con)
    if args.s3_endpoint:
        duckdb_extensions.import_extension("httpfs", con=con)
        endpoint = args.s3_endpoint.split("://", 1)[1]
        con.execute(
            f"CREATE SECRET s3 (TYPE S3, KEY_ID 'test', SECRET 'test', REGION 'us-east-1', "
            f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)"
        )
    return con


def check_json_rows(args, table, n):
    """Every produced record, exactly once, with equal columns, in all three engines."""
    arrow = table.scan().to_arrow()
    if arrow.num_rows != n:
        fail(f"pyiceberg: {arrow.num_rows} rows, wanted {n}")
    rows = arrow.select(["id", "name", "amount", "region", "tags", "loc", "key", "partition", "offset"]).to_pylist()
    by_id = {}
    for r in rows:
        if r["id"] in by_id:
            fail(f"pyiceberg: id {r['id']} twice")
        by_id[r["id"]] = r
    for i in range(n):
        r = by_id.get(i)
        if r is None:
            fail(f"pyiceberg: id {i} missing")
        want = record(i)
        got = {k: r[k] for k in want}
        if got != want:
            fail(f"pyiceberg: id {i}: got {got}, want {want}")
        if r["key"] != str(i).encode():
            fail(f"pyiceberg: id {i}: key {r['key']!r}")
    offsets = {(r["partition"], r["offset"]) for r in rows}
    if len(offsets) != n:
        fail("pyiceberg: duplicate (partition, offset)")
    print(f"pyiceberg: {n} rows equal to what was produced")

    con = duckdb_connect(args)
    loc = table.metadata_location
    cnt, distinct, total, tags, lat = con.execute(
        f"SELECT count(*), count(DISTINCT id), sum(amount), sum(len(tags)), sum(loc.lat) "
        f"FROM iceberg_scan('{loc}')"
    ).fetchone()
    want_total = sum(record(i)["amount"] for i in range(n))
    want_lat = sum(record(i)["loc"]["lat"] for i in range(n))
    if (cnt, distinct, tags) != (n, n, 2 * n) or abs(total - want_total) > 1e-6 or abs(lat - want_lat) > 1e-6:
        fail(f"duckdb: count {cnt} distinct {distinct} sum {total} tags {tags} lat {lat}")
    sample = con.execute(
        f"SELECT id, name, region, tags FROM iceberg_scan('{loc}') WHERE id IN (0, 12345, {n - 1}) ORDER BY id"
    ).fetchall()
    for i, name, region, tags in sample:
        w = record(i)
        if (name, region, list(tags)) != (w["name"], w["region"], w["tags"]):
            fail(f"duckdb: id {i}: {(name, region, tags)}")
    print(f"duckdb: {cnt} rows, columns match")

    import polars as pl

    df = pl.scan_iceberg(table).select(["id", "name", "amount"]).collect()
    if df.height != n or df["id"].n_unique() != n:
        fail(f"polars: {df.height} rows, {df['id'].n_unique()} distinct ids")
    if abs(df["amount"].sum() - want_total) > 1e-6:
        fail("polars: amount sum differs")
    bad = df.filter(pl.col("name") != pl.format("name-{}", pl.col("id"))).height
    if bad:
        fail(f"polars: {bad} names differ")
    print(f"polars: {df.height} rows, columns match")


def cmd_json(args):
    create_topic(args, 4, json_table_configs(interval_ms=1000))
    n = args.count
    produce(args, ((str(i), json.dumps(record(i)), None) for i in range(n)))
    t0 = time.time()
    table = wait_rows(args, args.topic, n)
    print(f"materialized {n} rows in {time.time() - t0:.1f}s after the last ack")
    check_json_rows(args, table, n)
    print(f"OK: json {n}")


def cmd_keyvalue(args):
    create_topic(
        args,
        3,
        {"table.enable": "true", "table.mode": "key_value", "table.commit.interval.ms": "500"},
    )
    rnd = random.Random(7)
    items = []
    for i in range(args.count):
        key = None if i % 17 == 0 else bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40)))
        value = None if i % 23 == 0 else bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 300)))
        headers = [(f"h{j}-\u00e9", None if (i + j) % 5 == 0 else bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 20)))) for j in range(i % 4)]
        items.append((key, value, headers))
    produce(args, items)
    table = wait_rows(args, args.topic, len(items))
    rows = table.scan().to_arrow().to_pylist()
    if len(rows) != len(items):
        fail(f"{len(rows)} rows, wanted {len(items)}")
    got = sorted(
        (
            (r["key"], r["value"], tuple((h["key"], h["value"]) for h in (r["headers"] or []))) for r in rows
        ),
        key=repr,
    )
    want = sorted(((k, v, tuple(h)) for k, v, h in items), key=repr)
    if got != want:
        for g, w in zip(got, want):
            if g != w:
                fail(f"row differs: got {g!r}, want {w!r}")
        fail("rows differ")
    print(f"OK: key_value {len(items)} binary records round-tripped")


def cmd_produce(args):
    """Half the records, wait for the first commit, then the other half: the caller kills
    the broker right after, while the second half is being materialized."""
    create_topic(args, 4, json_table_configs(interval_ms=200))
    half = args.count // 2
    produce(args, ((str(i), json.dumps(record(i)), None) for i in range(half)))
    deadline = time.time() + 120
    while True:
        t = load(args, args.topic)
        if t is not None and t.current_snapshot() is not None:
            break
        if time.time() > deadline:
            fail("no commit within 120s")
        time.sleep(0.05)
    produce(args, ((str(i), json.dumps(record(i)), None) for i in range(half, args.count)))
    rows = load(args, args.topic).scan().to_arrow().num_rows
    print(f"PRODUCED {args.count}; table has {rows} rows at the kill", flush=True)


def read_log(args):
    """Every (offset, key, value) of partition 0, from the start to the high watermark."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "tableflow-compacted", "enable.auto.commit": False})
    low, high = c.get_watermark_offsets(TopicPartition(args.topic, 0), timeout=10, cached=False)
    c.assign([TopicPartition(args.topic, 0, OFFSET_BEGINNING)])
    out = []
    deadline = time.time() + 60
    while high > low and (not out or out[-1][0] < high - 1):
        if time.time() > deadline:
            fail("reading the compacted log timed out")
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            fail(f"consumer error {m.error()}")
        out.append((m.offset(), m.key(), m.value()))
    c.close()
    return out


def cmd_compacted(args):
    """A compacted topic (cleaned before the table exists) gets a table: the backfill reads
    the cleaned log (offset gaps, an emptied first segment) and the table holds exactly the
    records left in it; records produced later are added. Tables are append-only: they keep
    what they saw, the cleaner does not remove rows."""
    create_topic(
        args,
        1,
        {
            "cleanup.policy": "compact",
            "segment.bytes": "4096",
            "segment.ms": "1000",
            "min.cleanable.dirty.ratio": "0.01",
        },
    )
    produce(args, ((f"key-{i % 10}".encode(), f"v-{i}".encode(), None) for i in range(args.count)))
    deadline = time.time() + 120
    while True:
        left = read_log(args)
        if len(left) == 10:
            break
        if time.time() > deadline:
            fail(f"the log was not compacted: {len(left)} records left")
        time.sleep(0.5)
    a = admin(args)
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        args.topic,
        incremental_configs=[
            ConfigEntry("table.enable", "true", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("table.mode", "key_value", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("table.commit.interval.ms", "500", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    for f in a.incremental_alter_configs([resource]).values():
        f.result(30)
    table = wait_rows(args, args.topic, 10)
    got = sorted((r["key"], r["value"]) for r in table.scan().to_arrow().to_pylist())
    want = sorted((k, v) for _, k, v in left)
    if got != want:
        fail(f"table after backfill: {got[:3]}..., want {want[:3]}...")
    # New keys: nothing the cleaner could remove.
    produce(args, ((f"new-{i}".encode(), f"n-{i}".encode(), None) for i in range(100)))
    table = wait_rows(args, args.topic, 110)
    rows = table.scan().to_arrow().num_rows
    if rows != 110:
        fail(f"{rows} rows after the new records, want 110")
    print(f"OK: compacted topic table {rows}")


def cmd_verify(args):
    table = wait_rows(args, args.topic, args.count)
    check_json_rows(args, table, args.count)
    print(f"OK: exactly once {args.count}")


def cmd_backfill(args):
    create_topic(args, 2, {})
    n = args.count
    items = []
    bad = {}
    for i in range(n):
        if i % 100 == 7:
            v = "not json {"
            bad[i] = "not valid JSON"
        elif i % 100 == 42:
            v = json.dumps({"id": "not-a-number", "name": "x"})
            bad[i] = "schema"
        else:
            v = json.dumps(record(i))
        items.append((str(i), v, [("i", str(i).encode())]))
    produce(args, items)
    good = n - len(bad)
    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        args.topic,
        incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in json_table_configs(interval_ms=500, partition_by="identity(region)").items()
        ],
    )
    a = admin(args)
    for f in a.incremental_alter_configs([res]).values():
        f.result(30)
    table = wait_rows(args, args.topic, good)
    rows = table.scan().to_arrow().select(["id", "region"]).to_pylist()
    ids = sorted(r["id"] for r in rows)
    if ids != sorted(i for i in range(n) if i not in bad):
        fail("backfilled rows differ from the valid records")
    files = table.inspect.files().to_pylist()
    regions = set()
    for f in files:
        region = f["partition"]["region"]
        regions.add(region)
        if f"region={region}" not in f["file_path"]:
            fail(f"data file {f['file_path']} not under its partition")
    if regions != set(REGIONS):
        fail(f"partitions {regions}")
    print(f"backfill: {good} rows in {len(files)} data files over partitions {sorted(regions)}")
    dlq = wait_rows(args, f"{args.topic}_dlq", len(bad))
    drows = dlq.scan().to_arrow().to_pylist()
    if len(drows) != len(bad):
        fail(f"dlq: {len(drows)} rows, wanted {len(bad)}")
    for r in drows:
        i = int(r["key"].decode())
        if i not in bad or not r["error"] or r["value"] != items[i][1].encode():
            fail(f"dlq row {r}")
        if r["headers"] != [{"key": "i", "value": str(i).encode()}]:
            fail(f"dlq headers {r['headers']}")
    print(f"dlq: {len(drows)} rows, e.g. error: {drows[0]['error']}")
    print(f"OK: backfill {good} dlq {len(bad)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["json", "keyvalue", "produce", "verify", "backfill", "compacted"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--compression", default="lz4")
    ap.add_argument("--s3-endpoint", default=os.environ.get("FLOE_TEST_S3_ENDPOINT"))
    args = ap.parse_args()
    args.data_dir = os.path.abspath(args.data_dir)
    {
        "json": cmd_json,
        "keyvalue": cmd_keyvalue,
        "produce": cmd_produce,
        "verify": cmd_verify,
        "backfill": cmd_backfill,
        "compacted": cmd_compacted,
    }[args.command](args)


if __name__ == "__main__":
    main()
