"""A consumer-group member on confluent-kafka (librdkafka): subscribe, process, commit.

Flags and event log: see `groups_common.py`. `--protocol consumer` uses KIP-848
(`group.protocol=consumer`); session and heartbeat settings are then the broker's.
"""

import sys

from confluent_kafka import Consumer, KafkaException, TopicPartition

from groups_common import EventLog, parse_args, simulate_processing, stop_requested


def main():
    args = parse_args(__doc__)
    log = EventLog(args.log)
    owned = set()

    def on_assign(consumer, partitions):
        owned.update(tp.partition for tp in partitions)
        log.own(owned)

    def on_revoke(consumer, partitions):
        owned.difference_update(tp.partition for tp in partitions)
        log.own(owned)

    def on_lost(consumer, partitions):
        owned.difference_update(tp.partition for tp in partitions)
        log.write("error partitions lost")
        log.own(owned)

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "error_cb": lambda err: log.write(f"error {err}"),
    }
    if args.protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf["session.timeout.ms"] = args.session_timeout_ms
        conf["heartbeat.interval.ms"] = args.heartbeat_ms
        if args.assignor:
            conf["partition.assignment.strategy"] = args.assignor
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    consumer = Consumer(conf)
    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    while not stop_requested(args):
        msgs = consumer.consume(num_messages=500, timeout=0.2)
        next_offsets = {}
        for m in msgs:
            if m.error():
                log.write(f"error {m.error()}")
                continue
            log.write(f"rec {m.partition()} {m.offset()} {m.value().decode()}")
            next_offsets[m.partition()] = m.offset() + 1
        if not next_offsets:
            continue
        simulate_processing(args)
        tps = [TopicPartition(args.topic, p, n) for p, n in sorted(next_offsets.items())]
        try:
            result = consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as e:
            log.write(f"commitfail {e}")
            continue
        for tp in result:
            if tp.error:
                log.write(f"commitfail partition {tp.partition}: {tp.error}")
            else:
                log.write(f"commit {tp.partition} {tp.offset}")

    consumer.close()
    log.write("closed")
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
