"""Shared pieces of the transaction checks (`txn_check.py`, `txn_ctp.py`, driven by
tests/tests/transactions.rs), on confluent-kafka (librdkafka 2.16).

Every client call here is bounded (TIMEOUT seconds, or an explicit deadline); a failed check
raises Failed, which `run` turns into a message on stderr and exit status 1. Results go to
stdout as one JSON object a line (`emit`), the last one being the summary the test parses.

Readers (`Reader`, `read_topic`) assign every partition of a topic from the beginning with
partition EOF events on, and read until each partition's EOF is at or past a target offset
(the high watermark, control records included). librdkafka signals EOF when its fetch
position reaches the end the broker reports: the high watermark for read_uncommitted, the
last stable offset for read_committed, so a read_committed reader only reaches the high
watermark once no transaction is open in the partition any more. librdkafka never returns
control records to the application in either isolation level; a control batch the broker
failed to mark as one would show up as an unexpected record.
"""

import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# Seconds any single client call may take.
TIMEOUT = 30

# Error names a fenced transactional producer may report: librdkafka maps the broker's
# PRODUCER_FENCED and INVALID_PRODUCER_EPOCH to its fatal local error _FENCED.
FENCING_ERRORS = ("_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH")


class Failed(Exception):
    """A check failed; the message says how."""


def log(tag, msg):
    print(f"[{tag}] {msg}", file=sys.stderr, flush=True)


def emit(obj):
    """One JSON line on stdout, flushed at once (the test may SIGKILL this process)."""
    print(json.dumps(obj, sort_keys=True), flush=True)


def describe(err):
    """A KafkaError with everything the checks look at."""
    return (f"{err.name()} (code {err.code()}, fatal={err.fatal()}, retriable={err.retriable()}, "
            f"txn_requires_abort={err.txn_requires_abort()}): {err.str()}")


def run(tag, main):
    """Runs main(); a failure exits 1 with its message on stderr."""
    try:
        main()
    except Failed as e:
        log(tag, f"FAILED: {e}")
        sys.exit(1)
    except KafkaException as e:
        log(tag, f"FAILED: unexpected Kafka error {describe(e.args[0])}")
        sys.exit(1)


def error_logger(tag):
    """An error_cb that logs what the client reports (for failure messages)."""
    return lambda err: log(tag, f"client error {describe(err)}")


def text(b):
    return None if b is None else b.decode("utf-8", "backslashreplace")


def create_topic(bootstrap, topic, partitions, config=None):
    """Creates `topic` with `partitions` partitions (and topic configs `config`) unless it
    exists, and waits until its metadata shows them."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "error_cb": error_logger("admin")})
    new_topic = NewTopic(topic, partitions, 1, config=config or {})
    future = admin.create_topics([new_topic], operation_timeout=TIMEOUT)[topic]
    try:
        future.result(TIMEOUT)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise Failed(f"creating topic {topic}: {describe(e.args[0])}")
    got = partitions_of(admin, topic)
    if len(got) != partitions:
        raise Failed(f"topic {topic} has partitions {got}, expected {partitions}")


def partitions_of(client, topic):
    """Partition ids of an existing `topic`, waiting up to TIMEOUT for its metadata."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        md = client.list_topics(topic, timeout=TIMEOUT).topics.get(topic)
        if md is not None and md.error is None and md.partitions:
            return sorted(md.partitions)
        if time.monotonic() > deadline:
            raise Failed(f"no metadata for topic {topic} within {TIMEOUT} s: {md.error if md else None}")
        time.sleep(0.2)


def high_watermarks(bootstrap, topic):
    """{partition: high watermark} of every partition of `topic` (ListOffsets latest with
    read_uncommitted: the log end, control records included)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "txn-check-watermarks",
        "enable.auto.commit": False,
        "isolation.level": "read_uncommitted",
        "error_cb": error_logger("watermarks"),
    })
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT, cached=False)[1]
            for p in partitions_of(consumer, topic)
        }
    finally:
        consumer.close()


def txn_call(tag, what, fn, *args, deadline_s=90):
    """Calls a transactional API, again while librdkafka reports a retriable error (its
    documented contract for init/commit/abort/send_offsets), up to `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return fn(*args)
        except KafkaException as e:
            err = e.args[0]
            if not err.retriable() or time.monotonic() > deadline:
                raise
            log(tag, f"{what}: retrying after {describe(err)}")
            time.sleep(0.2)


def transactional_producer(bootstrap, transactional_id, tag, **extra):
    """A producer with `transactional.id`, after init_transactions."""
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": transactional_id,
        "linger.ms": 5,
        "error_cb": error_logger(tag),
    }
    conf.update(extra)
    producer = Producer(conf)
    txn_call(tag, "init_transactions", producer.init_transactions, TIMEOUT)
    return producer


class Deliveries:
    """A delivery callback keeping every acknowledged (partition, offset, value) and every
    delivery error."""

    def __init__(self):
        self.ok = []
        self.failed = []

    def __call__(self, err, msg):
        if err is not None:
            self.failed.append(err)
        else:
            self.ok.append((msg.partition(), msg.offset(), text(msg.value())))


def flush_all(producer, deliveries, what):
    """Flushes `producer`; everything produced so far must be acknowledged."""
    remaining = producer.flush(TIMEOUT)
    if remaining:
        raise Failed(f"{what}: {remaining} records not acknowledged within {TIMEOUT} s")
    if deliveries.failed:
        raise Failed(f"{what}: delivery failed: {[describe(e) for e in deliveries.failed[:3]]}")


def by_partition(triples, partitions=()):
    """{partition: [(offset, value), ...] by offset} from (partition, offset, value)s; every
    partition in `partitions` is present, empty if nothing is in it."""
    out = {p: [] for p in partitions}
    for p, o, v in triples:
        out.setdefault(p, []).append((o, v))
    for records in out.values():
        records.sort()
    return out


def records_json(records):
    """{partition: [(offset, value)]} as JSON: {"<partition>": [[offset, value], ...]}."""
    return {str(p): [[o, v] for o, v in rs] for p, rs in sorted(records.items())}


def count(records):
    return sum(len(rs) for rs in records.values())


def compare(what, got, want):
    """Raises Failed unless `got` and `want` ({partition: [(offset, value)]}) are equal,
    naming the partition and the first records that differ."""
    for p in sorted(set(got) | set(want)):
        g, w = got.get(p, []), want.get(p, [])
        if g == w:
            continue
        g_set, w_set = set(g), set(w)
        unexpected = [r for r in g if r not in w_set]
        missing = [r for r in w if r not in g_set]
        first = next(((i, a, b) for i, (a, b) in enumerate(zip(g, w)) if a != b), None)
        raise Failed(
            f"{what}: partition {p}: read {len(g)} records, expected {len(w)}; "
            f"{len(unexpected)} unexpected (first {unexpected[:5]}); "
            f"{len(missing)} missing (first {missing[:5]}); "
            f"first difference (index, read, expected): {first}")


class Reader:
    """An assign()-based consumer of every partition of `topic` from its beginning, under
    `isolation` ("read_committed" or "read_uncommitted"), keeping every record it returned
    as (offset, value) per partition and the offset of each partition's latest EOF."""

    def __init__(self, bootstrap, topic, isolation, tag):
        self.tag = tag
        self.topic = topic
        self.isolation = isolation
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"txn-check-{tag}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            "fetch.wait.max.ms": 100,
            "error_cb": error_logger(tag),
        })
        self.partitions = partitions_of(self.consumer, topic)
        self.records = {p: [] for p in self.partitions}
        self.eof = {}
        self.last_error = None
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in self.partitions])

    def poll(self, timeout):
        """Consumes what arrives within `timeout` seconds; returns the records it got."""
        got = []
        for m in self.consumer.consume(num_messages=1000, timeout=timeout):
            err = m.error()
            if err is None:
                record = (m.offset(), text(m.value()))
                self.records[m.partition()].append(record)
                got.append((m.partition(),) + record)
            elif err.code() == KafkaError._PARTITION_EOF:
                self.eof[m.partition()] = m.offset()
            elif err.fatal():
                raise Failed(f"{self.tag}: fatal consumer error {describe(err)}")
            else:
                # Transient errors are the client's to retry; the deadline bounds the wait.
                self.last_error = describe(err)
                log(self.tag, f"consumer error {self.last_error}")
        return got

    def reached(self, ends):
        return all(self.eof.get(p, -1) >= end for p, end in ends.items())

    def read_to(self, ends, timeout_s, what):
        """Reads until every partition's EOF is at or past `ends[p]`."""
        deadline = time.monotonic() + timeout_s
        while not self.reached(ends):
            if time.monotonic() > deadline:
                raise Failed(
                    f"{self.tag} ({self.isolation}): {what}: not at the end within {timeout_s} s; "
                    f"latest EOF offsets {self.eof}, targets {ends}, records read "
                    f"{ {p: len(rs) for p, rs in self.records.items()} }, last error {self.last_error}")
            self.poll(0.2)

    def close(self):
        self.consumer.close()


def read_topic(bootstrap, topic, isolation, tag, timeout_s=90):
    """Every record a fresh consumer with `isolation` returns from `topic`, read up to the
    high watermark of every partition: ({partition: [(offset, value)]}, {partition: hw})."""
    ends = high_watermarks(bootstrap, topic)
    reader = Reader(bootstrap, topic, isolation, tag)
    try:
        reader.read_to(ends, timeout_s, f"reading {topic} to its high watermarks")
        return reader.records, ends
    finally:
        reader.close()
