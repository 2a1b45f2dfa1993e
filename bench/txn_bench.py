"""Transactions benchmark through confluent-kafka (librdkafka 2.16): transactional produce
as a share of idempotent produce, and end-to-end latency to a read_committed consumer.

  .venv/bin/python bench/txn_bench.py [--floe target/release/floe] [--seconds 8] [--rounds 2]

The same scenario as `floe-bench run --txn-only` (docs/benchmarks.md), with the client the
tests use: the rdkafka crate of floe-bench bundles librdkafka 2.12.1, whose transactional
producer reached less than half the rate of its idempotent one against the same broker,
while librdkafka 2.16 runs both at the same rate. Both are reported.

1. Throughput: 8 partitions, acks=all, 1 KiB records as fast as the broker takes them for
   --seconds: idempotent (enable.idempotence), then with a transactional.id committing every
   --commit-interval-ms (flush, then commit, as an application does); --rounds pairs, in
   alternating order, each on its own topic. Share = transactional MB/s / idempotent MB/s of
   the sums over the rounds.
2. End to end: a transactional producer at --rate records/s committing every interval, a
   read_committed consumer; each record carries its send time; receive minus send, after a
   2 s warm-up.
Writes a JSON report (git revision, machine, config, results) to bench/results/.
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time

from brokerproc import free_port, wait_listening, write_report
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING, libversion
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PARTITIONS = 8


def pct(sorted_vals, p):
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p))]


def produce(bootstrap, topic, seconds, commit_ms, record_size):
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.size": 1000000,
        "queue.buffering.max.kbytes": 4096,
    }
    if commit_ms:
        conf["transactional.id"] = f"bench-{topic}"
    p = Producer(conf)
    if commit_ms:
        p.init_transactions(30)
        p.begin_transaction()
    value = bytes(i % 251 for i in range(record_size))
    start = last = time.time()
    n = commits = 0
    while time.time() - start < seconds:
        for _ in range(256):
            while True:
                try:
                    p.produce(topic, value, partition=n % PARTITIONS)
                    break
                except BufferError:
                    p.poll(0.0005)
            n += 1
        p.poll(0)
        if commit_ms and (time.time() - last) * 1000 >= commit_ms:
            p.flush(60)
            p.commit_transaction(60)
            commits += 1
            p.begin_transaction()
            last = time.time()
    if commit_ms:
        p.flush(60)
        p.commit_transaction(60)
        commits += 1
    else:
        p.flush(60)
    dt = time.time() - start
    return {"records": n, "seconds": round(dt, 3), "mb_per_sec": round(n * record_size / dt / 1e6, 1),
            "commits": commits}


def end_to_end(bootstrap, topic, rate, seconds, commit_ms, record_size):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "bench-e2e",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
    })
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    total = int((seconds + 2) * rate)
    errors = []

    def producer():
        try:
            p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "bench-e2e", "linger.ms": 0})
            p.init_transactions(30)
            p.begin_transaction()
            pad = bytes(max(0, record_size - 8))
            start = last = time.time()
            for i in range(total):
                due = start + i / rate
                now = time.time()
                if due > now:
                    time.sleep(due - now)
                p.produce(topic, struct.pack(">d", time.time()) + pad, partition=i % PARTITIONS)
                p.poll(0)
                if (time.time() - last) * 1000 >= commit_ms:
                    p.flush(60)
                    p.commit_transaction(60)
                    p.begin_transaction()
                    last = time.time()
            p.flush(60)
            p.commit_transaction(60)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    t = threading.Thread(target=producer)
    warm_until = time.time() + 2
    t.start()
    lat = []
    received = 0
    deadline = time.time() + seconds + 120
    while received < total and time.time() < deadline and not errors:
        m = consumer.poll(0.5)
        if m is None or m.error():
            continue
        received += 1
        sent = struct.unpack(">d", m.value()[:8])[0]
        if sent >= warm_until:
            lat.append(time.time() - sent)
    t.join()
    consumer.close()
    if errors or received < total:
        raise RuntimeError(f"end to end: received {received} of {total}; producer errors {errors}")
    lat.sort()
    return {"rate_per_sec": rate, "commit_interval_ms": commit_ms, "samples": len(lat),
            "p50_ms": round(pct(lat, 0.5) * 1000, 1), "p99_ms": round(pct(lat, 0.99) * 1000, 1),
            "p999_ms": round(pct(lat, 0.999) * 1000, 1), "max_ms": round(lat[-1] * 1000, 1)}


def main():
    ap = argparse.ArgumentParser()
    default_bin = os.path.join(ROOT, "target", "release", "floe")
    ap.add_argument("--floe", default=os.environ.get("FLOE_BIN", default_bin))
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--commit-interval-ms", type=int, default=100)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--latency-seconds", type=float, default=10)
    ap.add_argument("--record-size", type=int, default=1024)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="floe-txnbench-")
    port = free_port()
    log = open(os.path.join(tmp, "broker.log"), "w")
    broker = subprocess.Popen(
        [args.floe, "serve", "--set", f"data_dir={os.path.join(tmp, 'data')}",
         "--set", f"listen=127.0.0.1:{port}"],
        stdout=log, stderr=log)
    bootstrap = f"127.0.0.1:{port}"
    try:
        wait_listening(port)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topics = [f"{kind}-{r}" for r in range(args.rounds) for kind in ("idem", "txn")] + ["e2e"]
        for f in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
            f.result(30)
        runs = {"idempotent": [], "transactional": []}
        for r in range(args.rounds):
            order = [("idem", 0), ("txn", args.commit_interval_ms)]
            if r % 2:
                order.reverse()
            for kind, commit_ms in order:
                result = produce(bootstrap, f"{kind}-{r}", args.seconds, commit_ms, args.record_size)
                runs["transactional" if commit_ms else "idempotent"].append(result)
                print(kind, json.dumps(result), flush=True)
        mb = {k: sum(x["records"] for x in v) * args.record_size / sum(x["seconds"] for x in v) / 1e6
              for k, v in runs.items()}
        share = mb["transactional"] / mb["idempotent"]
        e2e = end_to_end(bootstrap, "e2e", args.rate, args.latency_seconds, args.commit_interval_ms,
                         args.record_size)
        print("end to end:", json.dumps(e2e), flush=True)
        verdict = "met" if share >= 0.8 else "MISSED"
        print(f"transactional {mb['transactional']:.0f} vs idempotent {mb['idempotent']:.0f} MB/s = "
              f"{share * 100:.0f} % (target >= 80 %: {verdict})")
        out = write_report(ROOT, "transactions", {
            "client": {"librdkafka": libversion()[0]},
            "floe": args.floe,
            "config": vars(args),
            "runs": runs,
            "mb_per_sec": {k: round(v, 1) for k, v in mb.items()},
            "share": round(share, 3),
            "target_met": share >= 0.8,
            "end_to_end": e2e,
        })
        print("report:", out)
    finally:
        broker.terminate()
        broker.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
