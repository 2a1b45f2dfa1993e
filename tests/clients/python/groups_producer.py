"""Numbered records for the consumer-group tests, produced until a stop file appears.

Usage: groups_producer.py BOOTSTRAP TOPIC PARTITIONS ACK_LOG STOP_FILE RATE

Creates TOPIC with PARTITIONS partitions (or writes to it if it exists), then writes values "v<seq>"
(partition = seq % PARTITIONS) with an idempotent acks=all confluent-kafka producer at about
RATE records a second. Each acknowledged record is appended to ACK_LOG as
"PARTITION OFFSET VALUE" and flushed in its delivery report. Once STOP_FILE exists it flushes
everything in flight, prints "produced N" and exits 0; any delivery error exits 1.
"""

import os
import sys
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    bootstrap, topic, partitions, ack_log_path, stop_file, rate = sys.argv[1:7]
    partitions, rate = int(partitions), float(rate)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)], request_timeout=30
        )[topic].result(timeout=60)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise

    ack_log = open(ack_log_path, "a", buffering=1)
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
            return
        ack_log.write(f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n")
        ack_log.flush()

    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
         "linger.ms": 5}
    )
    seq = 0
    start = time.monotonic()
    while not os.path.exists(stop_file) and not errors:
        ahead = seq / rate - (time.monotonic() - start)
        producer.poll(max(ahead, 0))
        producer.produce(topic, value=f"v{seq}".encode(), partition=seq % partitions,
                         on_delivery=on_delivery)
        seq += 1
    remaining = producer.flush(60)
    if errors or remaining:
        print(f"FAIL: delivery errors {errors[:5]}, {remaining} records not delivered")
        return 1
    print(f"produced {seq}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
