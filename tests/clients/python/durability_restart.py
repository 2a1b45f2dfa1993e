"""Records survive a broker restart: write a phase of records, verify everything written so far.

Usage:
  durability_restart.py BOOTSTRAP STATE_FILE write LABEL COUNT CODEC
  durability_restart.py BOOTSTRAP STATE_FILE verify

`write` creates the topics on its first run, then produces COUNT records to every partition
of every topic (confluent-kafka, acks=all, idempotent, compression CODEC) and checks that
they were acknowledged at the offsets right after the ones written by earlier phases. The
acknowledged values are appended to STATE_FILE (JSON).

`verify` checks that every topic still exists with its partition count, that ListOffsets
earliest/latest are 0 and the number of records written, and that reading back gives every
record at its offset with its key, value and headers.

Prints OK on success; on a mismatch prints "FAIL: ..." and exits with status 1.
"""

import json
import os
import sys

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from durability_common import fail, read_all, topic_partitions

# topic -> partition count
TOPICS = {"durable-one": 1, "durable-three": 3, "durable-two": 2}


def key_of(value):
    return "k-" + value


def load_state(path):
    if not os.path.exists(path):
        return {t: {str(p): [] for p in range(n)} for t, n in TOPICS.items()}
    with open(path) as f:
        return json.load(f)


def save_state(path, state):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def create_topics(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in TOPICS.items()],
        request_timeout=30,
    )
    for topic, future in futures.items():
        try:
            future.result(timeout=60)
        except KafkaException as e:
            fail(f"create_topics({topic}): {e}")


def write(bootstrap, state_path, label, count, codec):
    first_run = not os.path.exists(state_path)
    if first_run:
        create_topics(bootstrap)
    state = load_state(state_path)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": codec,
            "linger.ms": 5,
            "message.timeout.ms": 60000,
        }
    )
    acked = []
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{msg.topic()}-{msg.partition()}: {err}")
        else:
            acked.append((msg.topic(), msg.partition(), msg.offset(), msg.value().decode()))

    for topic, partitions in sorted(TOPICS.items()):
        for p in range(partitions):
            for i in range(count):
                value = f"{label}/{topic}/{p}/{i:06d}"
                producer.produce(
                    topic,
                    value=value.encode(),
                    key=key_of(value).encode(),
                    partition=p,
                    headers=[("phase", label.encode())],
                    on_delivery=on_delivery,
                )
                producer.poll(0)
    remaining = producer.flush(90)
    if remaining:
        fail(f"{remaining} records not delivered within 90 s")
    if errors:
        fail(f"delivery errors: {errors[:10]}")

    acked.sort()
    for topic, p, offset, value in acked:
        log = state[topic][str(p)]
        if offset != len(log):
            fail(
                f"{topic}-{p}: {value} acknowledged at offset {offset}, "
                f"expected the next offset {len(log)} after the earlier records"
            )
        log.append(value)
    save_state(state_path, state)
    print(f"wrote {len(acked)} records (phase {label}, {codec})")


def verify(bootstrap, state_path):
    state = load_state(state_path)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=30)
    for topic, partitions in TOPICS.items():
        if topic not in metadata.topics:
            fail(f"topic {topic} is gone; metadata lists {sorted(metadata.topics)}")
        got = len(metadata.topics[topic].partitions)
        if got != partitions:
            fail(f"topic {topic} has {got} partitions, expected {partitions}")

    tps = topic_partitions(TOPICS)
    earliest, latest, records = read_all(bootstrap, tps)
    total = 0
    for tp in tps:
        name = f"{tp.topic}-{tp.partition}"
        expected = state[tp.topic][str(tp.partition)]
        if earliest[tp] != 0:
            fail(f"{name}: ListOffsets earliest is {earliest[tp]}, expected 0")
        if latest[tp] != len(expected):
            fail(f"{name}: ListOffsets latest is {latest[tp]}, expected {len(expected)}")
        got = records[tp]
        if len(got) != len(expected):
            fail(f"{name}: read {len(got)} records, expected {len(expected)}")
        for offset, (record, value) in enumerate(zip(got, expected)):
            where = f"{name}@{offset}"
            if record.offset != offset:
                fail(f"{where}: read offset {record.offset} instead")
            if record.value != value.encode():
                fail(f"{where}: value {record.value!r}, expected {value!r}")
            if record.key != key_of(value).encode():
                fail(f"{where}: key {record.key!r}, expected {key_of(value)!r}")
            label = value.split("/", 1)[0]
            if list(record.headers) != [("phase", label.encode())]:
                fail(f"{where}: headers {record.headers!r}, expected phase={label}")
        total += len(got)
    print(f"verified {total} records in {len(tps)} partitions")


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bootstrap, state_path, command = sys.argv[1:4]
    if command == "write" and len(sys.argv) == 7:
        write(bootstrap, state_path, sys.argv[4], int(sys.argv[5]), sys.argv[6])
    elif command == "verify" and len(sys.argv) == 4:
        verify(bootstrap, state_path)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print("OK")


if __name__ == "__main__":
    main()
