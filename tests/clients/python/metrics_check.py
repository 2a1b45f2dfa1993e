"""/metrics under a real client load (tests/tests/operations.rs), parsed with
prometheus_client's text parser.

usage: metrics_check.py BOOTSTRAP HTTP_PORT METRICS_DOC

Produces with confluent-kafka to a plain topic, a table topic and a tiered topic, consumes
the plain topic with a group and commits chosen offsets, then checks the scrape:
- bytes in = the bytes the topic's log holds, records in = records produced;
- records out = records the consumer received, bytes out = bytes of the log it read;
- group lag = high watermark - committed offset, for every partition;
- tableflow lag is seen above 0 and falls to 0 once the table has caught up;
- request counts, error codes and latency histograms agree with what was sent;
- every metric docs/metrics.md lists as *always* present is in the scrape, and those
  listed *once tiered* are there for the tiered topic.
"""

import json
import re
import sys
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

PLAIN, TABLE, TIERED = "ops-load", "ops-table", "ops-tiered"
PARTITIONS = 3
RECORDS = 3000
GROUP = "ops-group"


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        if r.status != 200:
            fail(f"/metrics answered {r.status}")
        ctype = r.headers.get("Content-Type", "")
        if not ctype.startswith("text/plain"):
            fail(f"/metrics content type {ctype}")
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in samples:
                fail(f"sample {key} appears twice")
            samples[key] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def names(samples):
    return {name for (name, _) in samples}


def documented(doc_path):
    """(name, type, when) of every metric in the doc's tables."""
    out = []
    row = re.compile(r"^\| `(floe_[a-z0-9_]+)` \| (counter|gauge|histogram) \|[^|]*\|([^|]+)\|")
    with open(doc_path) as f:
        for line in f:
            m = row.match(line)
            if m:
                out.append((m.group(1), m.group(2), m.group(3).strip()))
    if len(out) < 30:
        fail(f"only {len(out)} metrics found in {doc_path}")
    return out


def wait_for(what, cond, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    fail(f"timed out waiting for {what}")


def main():
    bootstrap, port, doc = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [
        NewTopic(PLAIN, num_partitions=PARTITIONS, replication_factor=1),
        NewTopic(
            TABLE,
            num_partitions=2,
            replication_factor=1,
            config={
                "table.enable": "true",
                "table.mode": "key_value",
                "table.commit.interval.ms": "3000",
            },
        ),
        NewTopic(
            TIERED,
            num_partitions=1,
            replication_factor=1,
            config={"remote.storage.enable": "true", "segment.bytes": "16384"},
        ),
    ]
    for f in admin.create_topics(topics).values():
        f.result()
    # One refused request: its error code is counted.
    again = admin.create_topics([NewTopic(PLAIN, num_partitions=1, replication_factor=1)])
    try:
        again[PLAIN].result()
        fail("creating an existing topic succeeded")
    except Exception as e:  # KafkaException(TOPIC_ALREADY_EXISTS)
        if "TOPIC_ALREADY_EXISTS" not in str(e) and "already exists" not in str(e):
            fail(f"unexpected error {e}")

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce(PLAIN, key=f"k{i}".encode(), value=json.dumps({"i": i}).encode(),
                         partition=i % PARTITIONS)
    for i in range(600):
        producer.produce(TABLE, key=f"t{i}".encode(), value=f"v{i}".encode(), partition=i % 2)
    if producer.flush(60) != 0:
        fail("produce did not complete")
    # Several batches, so the tiered topic's 16 KiB segments roll and get uploaded.
    for i in range(400):
        producer.produce(TIERED, key=f"r{i}".encode(), value=b"x" * 200)
        if i % 50 == 49:
            producer.flush(60)
    if producer.flush(60) != 0:
        fail("produce did not complete")

    # Right after the produce (tables commit every 3 s): the table's lag, if reported yet.
    first = [
        v for (name, labels), v in scrape(port).items()
        if name == "floe_tableflow_lag_records" and dict(labels).get("table", "").endswith(TABLE)
    ]

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": GROUP,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([PLAIN])
    received = 0
    deadline = time.time() + 60
    while received < RECORDS and time.time() < deadline:
        m = consumer.poll(1.0)
        if m is None or m.error():
            continue
        received += 1
    if received != RECORDS:
        fail(f"consumed {received} of {RECORDS}")
    # Commit a different position per partition: lag 0, 100 and the whole partition.
    per_partition = RECORDS // PARTITIONS
    committed = {0: per_partition, 1: per_partition - 100, 2: 0}
    consumer.commit(
        offsets=[TopicPartition(PLAIN, p, o) for p, o in committed.items()], asynchronous=False
    )

    s = scrape(port)

    # Traffic: in = the log's bytes and the records produced; out = what was consumed.
    log_bytes = sum(value(s, "floe_log_size_bytes", topic=PLAIN, partition=str(p)) for p in range(PARTITIONS))
    checks = [
        ("floe_topic_records_in_total", value(s, "floe_topic_records_in_total", topic=PLAIN), RECORDS),
        ("floe_topic_bytes_in_total", value(s, "floe_topic_bytes_in_total", topic=PLAIN), log_bytes),
        ("floe_topic_records_out_total", value(s, "floe_topic_records_out_total", topic=PLAIN), received),
        ("floe_topic_bytes_out_total", value(s, "floe_topic_bytes_out_total", topic=PLAIN), log_bytes),
    ]
    for name, got, want in checks:
        if got != want:
            fail(f"{name}{{topic={PLAIN}}} = {got}, want {want}")
    print(f"traffic: {RECORDS} records, {int(log_bytes)} bytes in and out", flush=True)

    # Group lag: high watermark - committed, per partition, against the client's own view.
    for p, off in committed.items():
        low, high = consumer.get_watermark_offsets(TopicPartition(PLAIN, p), timeout=10)
        want = high - off
        got = value(s, "floe_group_lag", group=GROUP, topic=PLAIN, partition=str(p))
        if got != want:
            fail(f"floe_group_lag partition {p} = {got}, want {want} (hw {high}, committed {off})")
        if value(s, "floe_group_committed_offset", group=GROUP, topic=PLAIN, partition=str(p)) != off:
            fail(f"floe_group_committed_offset partition {p} != {off}")
        if value(s, "floe_log_end_offset", topic=PLAIN, partition=str(p)) != high:
            fail(f"floe_log_end_offset partition {p} != {high}")
    print("group lag matches the real lag", flush=True)
    if (value(s, "floe_connections") or 0) < 1:
        fail("floe_connections < 1 while clients are connected")

    # Requests: counted per API, errors by name, one latency observation per request.
    produces = value(s, "floe_requests_total", api="Produce")
    if not produces or value(s, "floe_request_seconds_count", api="Produce") != produces:
        fail(f"Produce requests {produces} vs latency count")
    if value(s, "floe_request_seconds_bucket", api="Produce", le="+Inf") != produces:
        fail("the +Inf bucket of Produce latency is not the request count")
    errors = value(s, "floe_request_errors_total", api="CreateTopics", error="TOPIC_ALREADY_EXISTS")
    if errors != 1:
        fail(f"CreateTopics TOPIC_ALREADY_EXISTS counted {errors} times, want 1")
    if (value(s, "floe_log_fsync_seconds_count") or 0) < 1:
        fail("no fsync observed under acks=all")
    consumer.close()

    # Tableflow lag falls to 0 once the table caught up.
    table = None
    for (name, labels) in s:
        d = dict(labels)
        if name == "floe_tableflow_lag_records" and d.get("table", "").endswith(TABLE):
            table = d["table"]
    if table is None:
        # Not reported yet: wait for the worker's first look at the partitions.
        def find():
            for (name, labels) in scrape(port):
                d = dict(labels)
                if name == "floe_tableflow_lag_records" and d.get("table", "").endswith(TABLE):
                    return d["table"]
            return None
        table = wait_for("tableflow lag of the table", find)
    seen = []

    def caught_up():
        now = scrape(port)
        lags = [value(now, "floe_tableflow_lag_records", table=table, partition=str(p)) for p in range(2)]
        seen.append(lags)
        return all(v == 0 for v in lags)

    wait_for("tableflow lag to fall to 0", caught_up, timeout=90)
    print(f"tableflow lag fell to 0 (table {table}; right after the produce: {first})", flush=True)

    # Tiered: its per-partition gauges appear once an upload pass ran.
    wait_for(
        "the tiered topic's first upload",
        lambda: (value(scrape(port), "floe_remote_log_bytes", topic=TIERED, partition="0") or 0) > 0,
    )

    # Every documented metric is in a scrape.
    s = scrape(port)
    present = names(s)
    missing = []
    for name, kind, when in documented(doc):
        wanted = when == "always" or when == "once tiered"
        if not wanted:
            continue
        sample = name + "_count" if kind == "histogram" else name
        if sample not in present:
            missing.append(name)
    if missing:
        fail(f"documented metrics missing from /metrics: {missing}")
    print(f"all documented metrics present ({len(present)} sample names)", flush=True)
    print("OK", flush=True)


if __name__ == "__main__":
    main()
