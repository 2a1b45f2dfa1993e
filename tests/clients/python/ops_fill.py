"""Fills a topic with a given number of MiB, fast (tests/tests/operations.rs).

usage: ops_fill.py BOOTSTRAP TOPIC PARTITIONS MIB

Creates TOPIC with PARTITIONS partitions and writes MIB MiB of 64 KiB values spread over
them with acks=all, then prints the count.
"""

import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    bootstrap, topic, partitions, mib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result()
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1048576,
        "queue.buffering.max.kbytes": 262144,
    })
    value = bytes(range(256)) * 256  # 64 KiB
    count = mib * 16
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value=value, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) != 0:
        print("FAIL: produce did not complete", flush=True)
        sys.exit(1)
    print(f"wrote {count} records ({mib} MiB)", flush=True)


if __name__ == "__main__":
    main()
