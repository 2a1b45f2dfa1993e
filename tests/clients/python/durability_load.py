"""Acknowledged records survive kill -9 of the broker under load.

Usage:
  durability_load.py BOOTSTRAP TOPIC produce ITERATION ACK_LOG
  durability_load.py BOOTSTRAP TOPIC verify ACK_LOG...

`produce` creates TOPIC (3 partitions) if it does not exist, then writes sequence-numbered
values ("itNN-SSSSSSSSSSSS", partition = sequence % 3) with an idempotent acks=all
confluent-kafka producer, at most RATE records a second, forever. Every acknowledged record
is appended to ACK_LOG as "value partition offset" and flushed in the delivery report, so
the log holds exactly what the broker acknowledged even when this process is killed. Errors from a dead broker are
expected: the test kills the broker, then this process.

`verify` reads the whole topic back and checks that every acknowledged record is at its
acknowledged partition and offset, that no value appears twice in the log, and that each
partition holds values in the order they were produced (iteration, then sequence).

Prints OK on success; on a mismatch prints "FAIL: ..." and exits with status 1.
"""

import sys
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from durability_common import fail, read_all, topic_partitions

PARTITIONS = 3
# Records per second at most: enough load to have many batches in flight at every kill, few
# enough that reading everything back stays quick.
RATE = 20000


def ensure_topic(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.create_topics(
        [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)], request_timeout=30
    )[topic]
    try:
        future.result(timeout=60)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def produce(bootstrap, topic, iteration, ack_log_path):
    ensure_topic(bootstrap, topic)
    ack_log = open(ack_log_path, "a")
    failures = [0]

    def on_delivery(err, msg):
        if err is not None:
            failures[0] += 1
            return
        ack_log.write(f"{msg.value().decode()} {msg.partition()} {msg.offset()}\n")
        ack_log.flush()

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "queue.buffering.max.messages": 20000,
        }
    )
    seq = 0
    start = time.monotonic()
    while True:
        ahead = seq / RATE - (time.monotonic() - start)
        if ahead > 0:
            producer.poll(ahead)
        value = f"it{iteration:02d}-{seq:012d}"
        try:
            producer.produce(topic, value=value.encode(), partition=seq % PARTITIONS,
                             on_delivery=on_delivery)
        except BufferError:
            # The queue is full (the broker is slow or dead): serve delivery reports and retry
            # the same sequence number.
            producer.poll(0.05)
            continue
        seq += 1
        producer.poll(0)


def parse_value(value):
    """("itNN-SSSS") -> (iteration, sequence), or None if it is not one of ours."""
    try:
        it, seq = value.split("-")
        return int(it[2:]), int(seq)
    except ValueError:
        return None


def verify(bootstrap, topic, ack_logs):
    acked = {}
    for path in ack_logs:
        with open(path) as f:
            data = f.read()
        # A line is complete only with its newline; the producer may have been killed while
        # writing one (it had been acknowledged but not yet fully logged: nothing to check).
        for line in data.split("\n")[:-1]:
            value, partition, offset = line.split(" ")
            if value in acked:
                fail(f"{value} acknowledged twice: {acked[value]} and ({partition}, {offset})")
            acked[value] = (int(partition), int(offset))
    if not acked:
        fail("no acknowledged records in the ack logs")

    tps = topic_partitions({topic: PARTITIONS})
    earliest, latest, records = read_all(bootstrap, tps)
    at = {}  # value -> (partition, offset) as read back
    for tp in tps:
        name = f"{topic}-{tp.partition}"
        if earliest[tp] != 0:
            fail(f"{name}: ListOffsets earliest is {earliest[tp]}, expected 0")
        previous = None
        for expected_offset, record in enumerate(records[tp]):
            where = f"{name}@{record.offset}"
            if record.offset != expected_offset:
                fail(f"{where}: expected offset {expected_offset} (offsets must be dense)")
            value = record.value.decode()
            parsed = parse_value(value)
            if parsed is None or parsed[1] % PARTITIONS != tp.partition:
                fail(f"{where}: unexpected value {value!r}")
            if value in at:
                fail(f"{where}: duplicate of {value}, already at {at[value]}")
            at[value] = (tp.partition, record.offset)
            if previous is not None and parsed <= previous:
                fail(f"{where}: {value} after it{previous[0]:02d}-{previous[1]:012d}: out of order")
            previous = parsed
        if len(records[tp]) != latest[tp]:
            fail(f"{name}: read {len(records[tp])} records, ListOffsets latest is {latest[tp]}")

    missing = []
    for value, (partition, offset) in sorted(acked.items()):
        if at.get(value) != (partition, offset):
            missing.append(f"{value} acked at ({partition}, {offset}), found at {at.get(value)}")
    if missing:
        fail(f"{len(missing)} acknowledged records lost or moved, e.g. {missing[:10]}")

    per_iteration = {}
    for value in acked:
        it = parse_value(value)[0]
        per_iteration[it] = per_iteration.get(it, 0) + 1
    print(
        f"{len(acked)} acknowledged records all present exactly once "
        f"(per iteration {dict(sorted(per_iteration.items()))}); "
        f"{len(at)} records in the log"
    )


def main():
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bootstrap, topic, command = sys.argv[1:4]
    if command == "produce" and len(sys.argv) == 6:
        produce(bootstrap, topic, int(sys.argv[4]), sys.argv[5])
    elif command == "verify":
        verify(bootstrap, topic, sys.argv[4:])
        print("OK")
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
