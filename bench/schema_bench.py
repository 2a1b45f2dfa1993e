"""Schema registry and typed tables benchmark.

  .venv/bin/python bench/schema_bench.py [--floe target/release/floe] [--mb 100]

1. Materialization throughput per broker core, Avro vs JSON in the same run: --mb MiB of
   Avro records (confluent-kafka's AvroSerializer against Floe's registry; nested record,
   array, map, decimal, timestamp) and the same records as JSON are produced to two topics
   with tables off; then each topic's table is turned on (table.mode=schema, table.mode=json)
   and the broker's CPU time (utime+stime from /proc) is measured until every row is
   committed. MiB/s per core = payload bytes / broker CPU seconds (target: Avro at least
   25 MiB/s per core, the JSON mode's floor).
2. Registry lookups: --lookups GET /schemas/ids/{id} over keep-alive connections from
   --threads client threads (what a deserializer does for each id it has not cached);
   lookups per second of wall time and per broker CPU second.
No peer runs beside it: Confluent's registry and Redpanda are not installable from the
registries this machine reaches (docs/benchmarks.md).
Writes a JSON report (git revision, machine, config, results) to bench/results/.
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "clients", "python"))
import schema_table_check as stc  # noqa: E402
from brokerproc import cpu_seconds, free_port, wait_listening, write_report  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic  # noqa: E402
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# The JSON-mode table of the same records (Iceberg schema of table.json.schema).
JSON_TABLE_SCHEMA = {
    "type": "struct",
    "fields": [
        {"id": 1, "name": "id", "type": "long", "required": True},
        {"id": 2, "name": "customer", "type": "string", "required": False},
        {"id": 3, "name": "amount", "type": "double", "required": False},
        {"id": 4, "name": "created", "type": "string", "required": False},
        {"id": 5, "name": "tags", "required": False,
         "type": {"type": "list", "element-id": 6, "element": "string", "element-required": False}},
        {"id": 7, "name": "ship", "required": False, "type": {"type": "struct", "fields": [
            {"id": 8, "name": "city", "type": "string", "required": False},
            {"id": 9, "name": "zip", "type": "int", "required": False}]}},
        {"id": 10, "name": "note", "type": "string", "required": False},
    ],
}


def produce(bootstrap, topic, values):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 20,
                  "batch.num.messages": 10000, "queue.buffering.max.messages": 1000000})
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(topic, key=str(i).encode(), value=v)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(120)


def materialize(admin, ns, broker_pid, topic, configs, records):
    """Turns the table on; broker CPU seconds and wall seconds until every row committed."""
    from tableflow_bench import next_offsets
    res = ConfigResource(
        ConfigResource.Type.TOPIC, topic,
        incremental_configs=[ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                             for k, v in configs.items()],
    )
    cpu0, t0 = cpu_seconds(broker_pid), time.time()
    for f in admin.incremental_alter_configs([res]).values():
        f.result(30)
    while sum(next_offsets(ns, topic).values()) < records:
        time.sleep(0.2)
    return cpu_seconds(broker_pid) - cpu0, time.time() - t0


def lookups(http_port, ids, total, threads):
    done = [0] * threads

    def run(k):
        conn = http.client.HTTPConnection("127.0.0.1", http_port)
        n = 0
        while n < total // threads:
            conn.request("GET", f"/schemas/ids/{ids[n % len(ids)]}")
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit(f"lookup answered {r.status}")
            n += 1
        done[k] = n

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(done), time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    default_bin = os.path.join(ROOT, "target", "release", "floe")
    if not os.path.exists(default_bin):
        default_bin = os.path.join(ROOT, "target", "debug", "floe")
    ap.add_argument("--floe", default=os.environ.get("FLOE_BIN", default_bin))
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--lookups", type=int, default=40000)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="floe-srbench-")
    data = os.path.join(tmp, "data")
    port, http_port = free_port(), free_port()
    log = open(os.path.join(tmp, "broker.log"), "w")
    broker = subprocess.Popen(
        [args.floe, "serve", "--set", f"data_dir={data}", "--set", f"listen=127.0.0.1:{port}",
         "--set", f"http_listen=127.0.0.1:{http_port}"],
        stdout=log, stderr=log,
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        wait_listening(port)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        client = SchemaRegistryClient({"url": f"http://127.0.0.1:{http_port}"})
        ns = argparse.Namespace(bootstrap=bootstrap, data_dir=data, s3_endpoint=None, topic=None)
        for t in ["bench_avro", "bench_json"]:
            for f in admin.create_topics([NewTopic(t, num_partitions=4, replication_factor=1)]).values():
                f.result(30)

        # Serialize the same records twice: Avro (wire format) and JSON.
        ser = stc.serializer("avro", client, False)
        ctx = SerializationContext("bench_avro", MessageField.VALUE)
        target = args.mb * 1024 * 1024
        avro_values, json_values = [], []
        avro_bytes = json_bytes = 0
        t_ser = time.time()
        while avro_bytes < target:
            i = len(avro_values)
            r = stc.avro_record(i)
            a = ser(r, ctx)
            plain = {k: v for k, v in r.items() if k != "attrs"}
            j = json.dumps({**plain, "amount": float(r["amount"]),
                            "created": r["created"].isoformat()}).encode()
            avro_values.append(a)
            json_values.append(j)
            avro_bytes += len(a)
            json_bytes += len(j)
        n = len(avro_values)
        print(f"serialized {n} records ({avro_bytes / 2**20:.1f} MiB Avro, "
              f"{json_bytes / 2**20:.1f} MiB JSON) in {time.time() - t_ser:.0f} s", flush=True)
        produce(bootstrap, "bench_avro", avro_values)
        produce(bootstrap, "bench_json", json_values)
        del avro_values, json_values

        results = {}
        for name, topic, configs, size in [
            ("avro", "bench_avro", {"table.enable": "true", "table.mode": "schema",
                                    "table.schema.subject": "bench_avro-value",
                                    "table.commit.interval.ms": "1000"}, avro_bytes),
            ("json", "bench_json", {"table.enable": "true", "table.mode": "json",
                                    "table.json.schema": json.dumps(JSON_TABLE_SCHEMA),
                                    "table.commit.interval.ms": "1000"}, json_bytes),
        ]:
            cpu, wall = materialize(admin, ns, broker.pid, topic, configs, n)
            mib = size / 2**20
            results[name] = {
                "records": n,
                "mib": round(mib, 1),
                "wall_s": round(wall, 2),
                "broker_cpu_s": round(cpu, 2),
                "mib_per_s": round(mib / wall, 1),
                "mib_per_s_per_core": round(mib / cpu, 1),
                "records_per_cpu_s": round(n / cpu),
            }
            print(f"{name}:", json.dumps(results[name]), flush=True)

        # Registry lookups by id (register a few more schemas to look up among).
        ids = [client.get_latest_version("bench_avro-value").schema_id]
        for k in range(9):
            ids.append(client.register_schema(f"bench-extra-{k}", Schema(
                json.dumps({"type": "record", "name": f"R{k}", "fields": [
                    {"name": "f", "type": "long"}]}), "AVRO")))
        cpu0 = cpu_seconds(broker.pid)
        count, wall = lookups(http_port, ids, args.lookups, args.threads)
        cpu = cpu_seconds(broker.pid) - cpu0
        registry = {
            "lookups": count,
            "threads": args.threads,
            "wall_s": round(wall, 2),
            "lookups_per_s": round(count / wall),
            "broker_cpu_s": round(cpu, 2),
            "lookups_per_broker_cpu_s": round(count / cpu) if cpu > 0 else None,
        }
        print("registry:", json.dumps(registry), flush=True)

        out = write_report(ROOT, "schema", {
            "floe": args.floe,
            "config": vars(args),
            "materialize": results,
            "registry": registry,
        })
        print("report:", out)
    finally:
        broker.terminate()
        broker.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
