"""Table maintenance benchmark (issue 16, acceptance 5): a DuckDB aggregate over a table
after 10,000 small commits, without maintenance and with it, and materialization
throughput while compaction runs.

  .venv/bin/python bench/maintenance_bench.py [--floe /work/rtarget/release/floe] [--commits 10000]

For each mode (`off`: table.maintenance.enable=false, what every table was before
maintenance existed; `nocompact`: expiry and orphan cleanup but no compaction; `on`: expiry,
compaction and orphan cleanup every --interval-ms), on a fresh broker:
1. Churn: a producer writes continuously into a 3-partition JSON topic partitioned by
   identity(region) with table.commit.interval.ms=10, until the table has --commits commits
   (its last sequence number). Reported: wall time, commits/s, rows/s materialized.
2. Burst: --burst records produced as fast as possible; time until the table holds them
   all (materialization throughput while compaction runs, in `on` mode).
3. Query: after a last maintenance round, `SELECT region, count(*), sum(id) ... GROUP BY
   region` through DuckDB's iceberg_scan, --runs times (median and min), plus the table's
   data files, manifests, snapshots and metadata file size.
Writes a JSON report (git revision, machine, config, results) to bench/results/.
No peer broker has Iceberg tables on this machine (Redpanda cannot be installed here), so
the comparison is Floe with and without maintenance.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from brokerproc import cpu_seconds, free_port, wait_listening
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "clients", "python"))
from maintenance_check import REGIONS, SCHEMA  # noqa: E402  the test's table, benchmarked

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
def catalog(data):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        "floe",
        uri=f"sqlite:///{data}/iceberg/catalog.db",
        warehouse=f"file://{data}/iceberg/warehouse",
    )


def load(data, name):
    try:
        return catalog(data).load_table(f"default.{name}")
    except Exception:  # noqa: BLE001 - not created yet, or swapped mid-read
        return None


def committed_rows(table):
    s = table.current_snapshot() if table else None
    if s is None:
        return 0
    raw = s.summary.additional_properties.get("floe.next-offsets") or "{}"
    return sum(json.loads(raw).values())


def value(i):
    return json.dumps({"id": i, "region": REGIONS[i % 3], "payload": "x" * (i % 50)})


class Load:
    """A producer thread writing small batches continuously."""

    def __init__(self, bootstrap, topic, start):
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
        self.topic = topic
        self.next = start
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run)

    def run(self):
        while not self.stop.is_set():
            for _ in range(20):
                try:
                    self.p.produce(self.topic, key=str(self.next), value=value(self.next))
                    self.next += 1
                except BufferError:
                    self.p.poll(0.05)
            self.p.poll(0.005)
        self.p.flush(60)


def duckdb_query(location, runs):
    import duckdb
    import duckdb_extensions

    con = duckdb.connect(config={"extension_directory": tempfile.mkdtemp(prefix="duckdb-ext-")})
    duckdb_extensions.import_extension("avro", con=con)
    duckdb_extensions.import_extension("iceberg", con=con)
    sql = (
        f"SELECT region, count(*), sum(id) FROM iceberg_scan('{location}') "
        f"GROUP BY region ORDER BY region"
    )
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = con.execute(sql).fetchall()
        times.append(time.perf_counter() - t0)
    return times, result


def run_mode(args, mode):
    tmp = tempfile.mkdtemp(prefix=f"floe-mbench-{mode}-")
    data = os.path.join(tmp, "data")
    port = free_port()
    log = open(os.path.join(tmp, "broker.log"), "w")
    broker = subprocess.Popen(
        [
            args.floe,
            "serve",
            "--set",
            f"data_dir={data}",
            "--set",
            f"listen=127.0.0.1:{port}",
            "--set",
            f"http_listen=127.0.0.1:{free_port()}",
        ],
        stdout=log,
        stderr=log,
    )
    bootstrap = f"127.0.0.1:{port}"
    topic = "churn"
    try:
        wait_listening(port)
        configs = {
            "table.enable": "true",
            "table.mode": "json",
            "table.json.schema": json.dumps(SCHEMA),
            "table.partition.by": "identity(region)",
            "table.commit.interval.ms": "10",
            "table.maintenance.enable": "false" if mode == "off" else "true",
            "table.maintenance.compaction.enable": "true" if mode == "on" else "false",
            "table.maintenance.interval.ms": str(args.interval_ms),
            "table.maintenance.snapshot.max.age.ms": str(args.max_age_ms),
            "table.maintenance.orphan.age.ms": "60000",
        }
        a = AdminClient({"bootstrap.servers": bootstrap})
        for f in a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1, config=configs)]).values():
            f.result(30)

        # 1. Churn until --commits commits.
        load_ = Load(bootstrap, topic, 0)
        cpu0, t0 = cpu_seconds(broker.pid), time.time()
        load_.t.start()
        commits, last_print = 0, 0
        while commits < args.commits and time.time() - t0 < args.churn_max_s:
            time.sleep(1)
            t = load(data, topic)
            if t is not None:
                commits = t.metadata.last_sequence_number
            if time.time() - last_print > 30:
                print(f"  [{mode}] {commits} commits after {time.time() - t0:.0f}s", flush=True)
                last_print = time.time()
        load_.stop.set()
        load_.t.join()
        churn_wall = time.time() - t0
        produced = load_.next
        while committed_rows(load(data, topic)) < produced:
            time.sleep(0.5)
        churn = {
            "commits": commits,
            "records": produced,
            "wall_s": round(churn_wall, 1),
            "commits_per_s": round(commits / churn_wall, 1),
            "rows_per_s": round(produced / churn_wall),
            "broker_cpu_s": round(cpu_seconds(broker.pid) - cpu0, 1),
        }
        print(f"  [{mode}] churn {json.dumps(churn)}", flush=True)

        # 2. Burst.
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20, "batch.size": 1 << 20})
        t0 = time.time()
        for i in range(produced, produced + args.burst):
            while True:
                try:
                    p.produce(topic, key=str(i), value=value(i))
                    break
                except BufferError:
                    p.poll(0.05)
        p.flush(120)
        acked = time.time() - t0
        total = produced + args.burst
        while committed_rows(load(data, topic)) < total:
            time.sleep(0.2)
        burst_wall = time.time() - t0
        burst = {
            "records": args.burst,
            "produce_s": round(acked, 2),
            "visible_s": round(burst_wall, 2),
            "rows_per_s": round(args.burst / burst_wall),
        }
        print(f"  [{mode}] burst {json.dumps(burst)}", flush=True)

        # 3. Query after a last round.
        if mode != "off":
            time.sleep(2 * args.interval_ms / 1000 + 5)
        t = load(data, topic)
        files = t.inspect.files().num_rows
        manifests = t.inspect.manifests().num_rows
        md_size = os.path.getsize(t.metadata_location.replace("file://", ""))
        times, result = duckdb_query(t.metadata_location, args.runs)
        rows = sum(r[1] for r in result)
        if rows != total:
            raise SystemExit(f"[{mode}] duckdb counted {rows} rows, produced {total}")
        query = {
            "rows": rows,
            "data_files": files,
            "manifests": manifests,
            "snapshots": len(t.metadata.snapshots),
            "metadata_file_bytes": md_size,
            "median_s": round(statistics.median(times), 3),
            "min_s": round(min(times), 3),
            "runs": [round(x, 3) for x in times],
        }
        print(f"  [{mode}] query {json.dumps(query)}", flush=True)
        return {"churn": churn, "burst": burst, "query": query}
    finally:
        broker.terminate()
        try:
            broker.wait(30)
        except subprocess.TimeoutExpired:
            broker.kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--floe", default=os.environ.get("FLOE_BIN", os.path.join(ROOT, "target", "release", "floe")))
    ap.add_argument("--commits", type=int, default=10000)
    ap.add_argument("--burst", type=int, default=300000)
    ap.add_argument("--interval-ms", type=int, default=10000)
    ap.add_argument("--max-age-ms", type=int, default=60000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--churn-max-s",
        type=float,
        default=1200,
        help="stop the churn here even short of --commits (without maintenance commits slow down as the metadata grows)",
    )
    ap.add_argument("--modes", default="off,nocompact,on")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    results = {}
    for mode in args.modes.split(","):
        print(f"mode {mode}", flush=True)
        results[mode] = run_mode(args, mode)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    report = {
        "benchmark": "table-maintenance",
        "git": rev,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "config": vars(args),
        "results": results,
    }
    if "on" in results:
        summary = {}
        for base in ("off", "nocompact"):
            if base not in results:
                continue
            b, on = results[base], results["on"]
            summary[f"{base}_vs_on"] = {
                "query_median_s": [b["query"]["median_s"], on["query"]["median_s"]],
                "query_speedup": round(b["query"]["median_s"] / on["query"]["median_s"], 2),
                "data_files": [b["query"]["data_files"], on["query"]["data_files"]],
                "churn_rows_per_s": [b["churn"]["rows_per_s"], on["churn"]["rows_per_s"]],
                "churn_commits_per_s": [b["churn"]["commits_per_s"], on["churn"]["commits_per_s"]],
                "burst_rows_per_s": [b["burst"]["rows_per_s"], on["burst"]["rows_per_s"]],
            }
        report["summary"] = summary
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(ROOT, "bench", "results", f"maintenance-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report.get("summary", results), indent=2))
    print(f"report: {path}")


if __name__ == "__main__":
    main()
