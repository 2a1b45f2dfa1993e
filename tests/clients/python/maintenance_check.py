"""Table maintenance end-to-end checks (issue 16): a table committed many times with
expiry, compaction and orphan cleanup on, read back by pyiceberg and DuckDB.

Subcommands (all take --bootstrap, --data-dir, --topic):
  create   create the table topic with fast commits (--commit-ms, default 50) and quick
           maintenance settings.
  churn    produce until the table has --min-commits commits (at most --seconds) while
           sampling the table about every 2 s: snapshot count, current metadata file size,
           live data files per table partition and manifests; fails when a sample exceeds
           its bound (bounds(), from the topic's settings and --commit-ms) or the commits
           are not reached in time; then waits until the table holds every record of the
           log and checks the rows with pyiceberg and DuckDB.
  load     produce for --seconds, ignoring failures (the broker may die under it).
  verify   wait until the table holds every record of the log, each (partition, offset)
           exactly once, equal in pyiceberg and DuckDB; with --compacted also that a
           compaction ran (a replace snapshot in the history or fewer files than commits).
  orphans  list the table's unreferenced files (--expect-some: fail if none), or with
           --wait-gone wait until the files listed in --state are deleted.
Exits non-zero with the first mismatch on stderr; prints figures on stdout.
"""

import argparse
import json
import os
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SCHEMA = {
    "type": "struct",
    "fields": [
        {"id": 1, "name": "id", "type": "long", "required": True},
        {"id": 2, "name": "region", "type": "string", "required": False},
        {"id": 3, "name": "payload", "type": "string", "required": False},
    ],
}
REGIONS = ["eu", "us", "ap"]
PARTITIONS = 3

# Maintenance settings of the test topic, and the bounds they imply (docs/tableflow.md,
# "Maintenance"): between two rounds a table partition gains at most one file and the table
# one snapshot per commit.
COMMIT_MS = 50  # the default of --commit-ms
INTERVAL_MS = 2000
MAX_AGE_MS = 8000
MIN_KEEP = 5
VERSIONS_MAX = 10
MIN_FILES = 4
ORPHAN_AGE_MS = 4000
# Files below this are compaction's candidates (the bounds count them); larger ones are the
# files the data itself needs (each at least this big, so at most bytes / SMALL_BYTES of
# them). 1 MiB keeps a round's rewrite small on a debug build.
SMALL_BYTES = 1 << 20
SLACK_MS = 4000  # a round's own duration and scheduling on 2 busy cores


def bounds(commit_ms):
    per_round = (INTERVAL_MS + SLACK_MS) // commit_ms
    snapshots = MIN_KEEP + (MAX_AGE_MS + INTERVAL_MS + SLACK_MS) // commit_ms
    return {
        "snapshots": snapshots,
        # Every snapshot adds about 1 KiB of JSON (summary, manifest list, log entry).
        "metadata_bytes": 64 * 1024 + snapshots * 1536,
        "files_per_partition": MIN_FILES + per_round,
        "metadata_files": VERSIONS_MAX + 1 + 2,
    }


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def table_configs(commit_ms):
    return {
        "table.enable": "true",
        "table.mode": "json",
        "table.json.schema": json.dumps(SCHEMA),
        "table.partition.by": "identity(region)",
        "table.commit.interval.ms": str(commit_ms),
        "table.maintenance.interval.ms": str(INTERVAL_MS),
        "table.maintenance.snapshot.max.age.ms": str(MAX_AGE_MS),
        "table.maintenance.snapshot.min.keep": str(MIN_KEEP),
        "table.maintenance.metadata.previous.versions.max": str(VERSIONS_MAX),
        "table.maintenance.compaction.min.files": str(MIN_FILES),
        "table.maintenance.compaction.small.file.bytes": str(SMALL_BYTES),
        "table.maintenance.orphan.age.ms": str(ORPHAN_AGE_MS),
    }


def cmd_create(args):
    a = AdminClient({"bootstrap.servers": args.bootstrap})
    fs = a.create_topics(
        [NewTopic(args.topic, num_partitions=PARTITIONS, replication_factor=1, config=table_configs(args.commit_ms))]
    )
    for f in fs.values():
        f.result(30)
    print(f"created {args.topic}")


def next_id_file(args):
    return os.path.join(args.data_dir, "..", f"{args.topic}.next-id")


def save_next_id(path, value):
    with open(path + ".tmp", "w") as f:
        f.write(str(value))
    os.replace(path + ".tmp", path)


def produce_for(args, seconds, tolerate_failures):
    """Produces small batches continuously so every commit interval has rows; returns the
    number of acknowledged records. Ids continue across calls (kept beside the data dir)."""
    path = next_id_file(args)
    next_id = int(open(path).read()) if os.path.exists(path) else 0
    p = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 10000,
            "enable.idempotence": True,
        }
    )
    acked = [0]
    errors = []

    def cb(err, _msg):
        if err is None:
            acked[0] += 1
        else:
            errors.append(err)

    deadline = time.time() + seconds
    while time.time() < deadline:
        # Reserve the ids first: a kill of this process must not reuse them next time
        # (written aside and renamed: a kill mid-write must not leave an empty file).
        save_next_id(path, next_id + 30)
        for _ in range(30):
            i = next_id
            next_id += 1
            value = json.dumps({"id": i, "region": REGIONS[i % 3], "payload": "x" * (i % 50)})
            try:
                p.produce(args.topic, key=str(i), value=value, on_delivery=cb)
            except BufferError:
                p.poll(0.1)
        # --rate paces the producer (records per second; 0: as fast as it goes; poll
        # returns early when it serves a delivery, so it cannot pace).
        if args.rate > 0:
            p.poll(0)
            time.sleep(30 / args.rate)
        else:
            p.poll(0.02)
    left = p.flush(30)
    save_next_id(path, next_id)
    if (left or errors) and not tolerate_failures:
        fail(f"produce: {left} unflushed, errors {errors[:3]}")
    return acked[0]


def catalog(args):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        "floe",
        uri=f"sqlite:///{args.data_dir}/iceberg/catalog.db",
        warehouse=f"file://{args.data_dir}/iceberg/warehouse",
    )


def load(args):
    try:
        return catalog(args).load_table(f"default.{args.topic}")
    except Exception:  # noqa: BLE001 - not created yet, or a commit swapped it mid-read
        return None


def local(path):
    return path[len("file://"):] if path.startswith("file://") else path


def sample(table):
    """Snapshot count, metadata file size, live small files (below SMALL_BYTES, the ones
    compaction bounds) and large files per table partition, manifests."""
    md = table.metadata
    size = os.path.getsize(local(table.metadata_location))
    files = table.inspect.files().select(["partition", "file_size_in_bytes"]).to_pylist()
    small = {}
    large = {}
    for f in files:
        key = json.dumps(f["partition"], sort_keys=True)
        counts = small if f["file_size_in_bytes"] < SMALL_BYTES else large
        counts[key] = counts.get(key, 0) + 1
    manifests = table.inspect.manifests().num_rows if table.current_snapshot() else 0
    return {
        "snapshots": len(md.snapshots),
        "metadata_bytes": size,
        "files_per_partition": max(small.values()) if small else 0,
        "large_files_per_partition": max(large.values()) if large else 0,
        "manifests": manifests,
        "commits": md.last_sequence_number,
    }


def log_records(args):
    """(partition, offset) of every record in the topic's log."""
    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"verify-{time.time()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    ends = {}
    for p in range(PARTITIONS):
        lo, hi = c.get_watermark_offsets(TopicPartition(args.topic, p), timeout=30)
        ends[p] = hi
    c.close()
    return ends


def wait_table_matches_log(args, timeout=240):
    ends = log_records(args)
    want = sum(ends.values())
    deadline = time.time() + timeout
    seen = -1
    while time.time() < deadline:
        t = load(args)
        if t is not None and t.current_snapshot() is not None:
            try:
                arrow = t.scan().to_arrow()
            except Exception:  # noqa: BLE001 - files of an expired snapshot went away mid-scan
                time.sleep(0.5)
                continue
            seen = arrow.num_rows
            if seen >= want:
                return t, arrow, ends
        time.sleep(0.5)
    fail(f"table: {seen} rows after {timeout}s, the log holds {want}")


def check_rows(args):
    t, arrow, ends = wait_table_matches_log(args)
    want = sum(ends.values())
    rows = arrow.select(["id", "partition", "offset"]).to_pylist()
    if len(rows) != want:
        fail(f"pyiceberg: {len(rows)} rows, the log holds {want}")
    pos = {(r["partition"], r["offset"]) for r in rows}
    if len(pos) != want:
        fail(f"pyiceberg: {want - len(pos)} duplicate (partition, offset)")
    for p, end in ends.items():
        n = sum(1 for (pp, _) in pos if pp == p)
        if n != end:
            fail(f"pyiceberg: partition {p} has {n} rows, its log {end}")
    ids = {r["id"] for r in rows}
    if len(ids) != want:
        fail(f"pyiceberg: {want - len(ids)} duplicate ids")
    print(f"pyiceberg: {want} rows, each (partition, offset) once")

    import duckdb
    import duckdb_extensions

    con = duckdb.connect(config={"extension_directory": tempfile.mkdtemp(prefix="duckdb-ext-")})
    duckdb_extensions.import_extension("avro", con=con)
    duckdb_extensions.import_extension("iceberg", con=con)
    cnt, distinct, s = con.execute(
        f"SELECT count(*), count(DISTINCT id), sum(id) FROM iceberg_scan('{t.metadata_location}')"
    ).fetchone()
    if (cnt, distinct, s) != (want, want, sum(ids)):
        fail(f"duckdb: count {cnt} distinct {distinct} sum {s}, wanted {want} rows")
    print(f"duckdb: {cnt} rows, {distinct} distinct ids")
    return t


def cmd_churn(args):
    b = bounds(args.commit_ms)
    worst = {
        k: 0
        for k in (
            "snapshots",
            "metadata_bytes",
            "files_per_partition",
            "large_files_per_partition",
            "manifests",
        )
    }
    start = time.time()
    deadline = start + args.seconds
    warm = start + (INTERVAL_MS + MAX_AGE_MS + SLACK_MS) / 1000
    produced = 0
    samples = 0
    commits = 0
    while commits < args.min_commits or time.time() < start + 10:
        if time.time() > deadline:
            fail(f"only {commits} commits after {args.seconds}s, the check wants {args.min_commits}")
        produced += produce_for(args, 2.0, False)
        t = load(args)
        if t is None or t.current_snapshot() is None:
            continue
        try:
            s = sample(t)
        except (FileNotFoundError, OSError):
            continue  # the metadata file was superseded and deleted while sampled
        samples += 1
        commits = s["commits"]
        for k in worst:
            worst[k] = max(worst[k], s[k])
        if time.time() > warm:
            for k in ("snapshots", "metadata_bytes", "files_per_partition"):
                if s[k] > b[k]:
                    fail(f"{k} = {s[k]} exceeds its bound {b[k]} (sample {s})")
    t = check_rows(args)
    # One more round after the last commit: the files compact down.
    time.sleep((INTERVAL_MS + SLACK_MS) / 1000)
    t = load(args)
    s = sample(t)
    meta_dir = os.path.join(local(t.metadata.location), "metadata")
    metadata_files = [f for f in os.listdir(meta_dir) if f.endswith(".metadata.json")]
    if len(metadata_files) > b["metadata_files"]:
        fail(f"{len(metadata_files)} metadata files on disk, bound {b['metadata_files']}")
    ops = [snap.summary.operation.value for snap in t.metadata.snapshots if snap.summary]
    if "replace" not in ops and s["files_per_partition"] >= s["commits"]:
        fail("no compaction happened")
    print(
        json.dumps(
            {
                "produced": produced,
                "seconds": round(time.time() - start, 1),
                "commit_ms": args.commit_ms,
                "commits": s["commits"],
                "samples": samples,
                "worst": worst,
                "bounds": b,
                "final": s,
                "metadata_files_on_disk": len(metadata_files),
            }
        )
    )
    check_rows(args)
    print("OK: churn")


def cmd_load(args):
    n = produce_for(args, args.seconds, True)
    print(f"acknowledged {n}")


def cmd_verify(args):
    t = check_rows(args)
    if args.compacted:
        ops = [snap.summary.operation.value for snap in t.metadata.snapshots if snap.summary]
        s = sample(t)
        if "replace" not in ops and s["files_per_partition"] > bounds(args.commit_ms)["files_per_partition"]:
            fail(f"no sign of compaction: {s}")
        print(f"maintenance ran: {s}")
    print("OK: verify")


def referenced(table):
    """Every file the table's metadata reaches: metadata files, manifest lists, manifests
    and data files of every snapshot."""
    md = table.metadata
    out = {local(table.metadata_location)}
    out.update(local(e.metadata_file) for e in md.metadata_log)
    io = table.io
    for snap in md.snapshots:
        out.add(local(snap.manifest_list))
        for m in snap.manifests(io):
            out.add(local(m.manifest_path))
            for e in m.fetch_manifest_entry(io, discard_deleted=False):
                out.add(local(e.data_file.file_path))
    return out


def cmd_orphans(args):
    t = load(args)
    root = local(t.metadata.location)
    if args.wait_gone:
        listed = json.load(open(args.state))
        deadline = time.time() + args.timeout
        while time.time() < deadline:
            left = [f for f in listed if os.path.exists(f)]
            if not left:
                print(f"all {len(listed)} orphans deleted")
                return
            time.sleep(0.5)
        fail(f"{len(left)} orphans still there after {args.timeout}s: {left[:3]}")
    on_disk = set()
    for d, _, files in os.walk(root):
        for f in files:
            on_disk.add(os.path.join(d, f))
    refs = referenced(t)
    orphans = sorted(f for f in on_disk if f not in refs and f.endswith(".parquet"))
    print(f"{len(on_disk)} files, {len(orphans)} unreferenced data files")
    if args.expect_some and not orphans:
        fail("the crash left no unreferenced data file")
    with open(args.state, "w") as f:
        json.dump(orphans, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--min-commits", type=int, default=0)
    ap.add_argument("--commit-ms", type=int, default=COMMIT_MS)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--compacted", action="store_true")
    ap.add_argument("--expect-some", action="store_true")
    ap.add_argument("--wait-gone", action="store_true")
    ap.add_argument("--state", default="")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    {
        "create": cmd_create,
        "churn": cmd_churn,
        "load": cmd_load,
        "verify": cmd_verify,
        "orphans": cmd_orphans,
    }[args.command](args)


if __name__ == "__main__":
    main()
