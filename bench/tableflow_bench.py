"""Tableflow benchmark: materialization throughput (MB/s per broker core) and freshness
(produce acknowledgement -> row visible in a catalog read).

  .venv/bin/python bench/tableflow_bench.py [--floe target/release/floe] [--mb 200]

1. Throughput: produces --mb MiB of JSON records (4 partitions) with tables off, then turns
   tables on (backfill) and measures wall time and the broker's CPU time (utime+stime from
   /proc) until every row is committed. MB/s per core = bytes / broker CPU seconds.
2. Freshness: tables on with table.commit.interval.ms=--interval-ms; produces at --rate
   records/s for --seconds; records each acknowledgement time; polls the SQL catalog every
   50 ms and reads the committed next offsets from the snapshot summary; a record is
   visible at the first poll whose offset for its partition is past it.
Writes a JSON report (git revision, machine, config, results) to bench/results/.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "clients", "python"))
import tableflow_check as tc  # noqa: E402
from brokerproc import cpu_seconds, free_port, wait_listening, write_report  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


_CATALOG = {}


def next_offsets(ns, name):
    """Next offsets per partition committed in the table's newest snapshot."""
    if "cat" not in _CATALOG:
        if not os.path.exists(os.path.join(ns.data_dir, "iceberg", "catalog.db")):
            return {}
        _CATALOG["cat"] = tc.catalog(ns)
    cat = _CATALOG["cat"]
    try:
        t = cat.load_table(f"default.{name}")
    except Exception:  # noqa: BLE001 - not created yet
        return {}
    s = t.current_snapshot()
    if s is None:
        return {}
    raw = s.summary.additional_properties.get("floe.next-offsets") if hasattr(s.summary, "additional_properties") else s.summary.get("floe.next-offsets")
    return {int(k): v for k, v in json.loads(raw or "{}").items()}


def pct(sorted_vals, p):
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p))]


def main():
    ap = argparse.ArgumentParser()
    default_bin = os.path.join(ROOT, "target", "release", "floe")
    if not os.path.exists(default_bin):
        default_bin = os.path.join(ROOT, "target", "debug", "floe")
    ap.add_argument("--floe", default=os.environ.get("FLOE_BIN", default_bin))
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="floe-tfbench-")
    data = os.path.join(tmp, "data")
    port = free_port()
    log = open(os.path.join(tmp, "broker.log"), "w")
    broker = subprocess.Popen(
        [args.floe, "serve", "--set", f"data_dir={data}", "--set", f"listen=127.0.0.1:{port}"],
        stdout=log,
        stderr=log,
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        wait_listening(port)
        a = AdminClient({"bootstrap.servers": bootstrap})
        ns = argparse.Namespace(bootstrap=bootstrap, data_dir=data, s3_endpoint=None, compression="lz4")

        # 1. Throughput (backfill of --mb MiB).
        ns.topic = "bench_tp"
        for f in a.create_topics([NewTopic(ns.topic, num_partitions=4, replication_factor=1)]).values():
            f.result(30)
        target = args.mb * 1024 * 1024
        total, n = 0, 0
        items = []
        while total < target:
            v = json.dumps(tc.record(n))
            items.append((str(n), v, None))
            total += len(v) + len(str(n))
            n += 1
        tc.produce(ns, items)
        del items
        configs = tc.json_table_configs(interval_ms=args.interval_ms)
        res = ConfigResource(
            ConfigResource.Type.TOPIC,
            ns.topic,
            incremental_configs=[ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()],
        )
        cpu0, t0 = cpu_seconds(broker.pid), time.time()
        for f in a.incremental_alter_configs([res]).values():
            f.result(30)
        while sum(next_offsets(ns, ns.topic).values()) < n:
            time.sleep(0.2)
        wall, cpu = time.time() - t0, cpu_seconds(broker.pid) - cpu0
        mib = total / (1024 * 1024)
        throughput = {
            "records": n,
            "mib": round(mib, 1),
            "wall_s": round(wall, 2),
            "broker_cpu_s": round(cpu, 2),
            "mib_per_s": round(mib / wall, 1),
            "mib_per_s_per_core": round(mib / cpu, 1),
        }
        print("throughput:", json.dumps(throughput), flush=True)

        # 2. Freshness at a steady rate.
        ns.topic = "bench_fresh"
        for f in a.create_topics(
            [NewTopic(ns.topic, num_partitions=4, replication_factor=1, config=configs)]
        ).values():
            f.result(30)
        acks = {}  # (partition, offset) -> ack time
        lock = threading.Lock()
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})

        def cb(err, msg):
            if err is None:
                with lock:
                    acks[(msg.partition(), msg.offset())] = time.time()

        visible = {}
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                offs = next_offsets(ns, ns.topic)
                now = time.time()
                with lock:
                    pending = [k for k in acks if k not in visible]
                for part, off in pending:
                    if off < offs.get(part, 0):
                        visible[(part, off)] = now
                time.sleep(0.05)

        poller = threading.Thread(target=poll)
        poller.start()
        i = 0
        start = time.time()
        while time.time() - start < args.seconds:
            due = int((time.time() - start) * args.rate)
            while i < due:
                p.produce(ns.topic, key=str(i), value=json.dumps(tc.record(i)), on_delivery=cb)
                i += 1
            p.poll(0.001)
        p.flush(60)
        deadline = time.time() + 10 * args.interval_ms / 1000 + 30
        while len(visible) < len(acks) and time.time() < deadline:
            time.sleep(0.1)
        stop.set()
        poller.join()
        lat = sorted(visible[k] - acks[k] for k in visible)
        fresh = {
            "records": len(acks),
            "visible": len(visible),
            "commit_interval_ms": args.interval_ms,
            "p50_ms": round(pct(lat, 0.50) * 1000),
            "p99_ms": round(pct(lat, 0.99) * 1000),
            "max_ms": round(lat[-1] * 1000),
        }
        print("freshness:", json.dumps(fresh), flush=True)
        out = write_report(ROOT, "tableflow", {
            "floe": args.floe,
            "config": vars(args),
            "throughput": throughput,
            "freshness": fresh,
        })
        print("report:", out)
    finally:
        broker.terminate()
        broker.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
