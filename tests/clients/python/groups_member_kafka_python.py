"""A consumer-group member on kafka-python: subscribe, process, commit.

Flags and event log: see `groups_common.py` (kafka-python speaks only the classic protocol).
"""

import sys

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from groups_common import EventLog, parse_args, simulate_processing, stop_requested

ASSIGNORS = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}


class Listener(ConsumerRebalanceListener):
    def __init__(self, log):
        self.log = log
        self.owned = set()

    def on_partitions_revoked(self, revoked):
        self.owned.difference_update(tp.partition for tp in revoked)
        self.log.own(self.owned)

    def on_partitions_assigned(self, assigned):
        self.owned.update(tp.partition for tp in assigned)
        self.log.own(self.owned)


def main():
    args = parse_args(__doc__)
    if args.protocol != "classic":
        raise SystemExit("kafka-python speaks only the classic group protocol")
    log = EventLog(args.log)
    conf = {
        "bootstrap_servers": args.bootstrap,
        "group_id": args.group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": args.session_timeout_ms,
        "heartbeat_interval_ms": args.heartbeat_ms,
    }
    if args.assignor:
        conf["partition_assignment_strategy"] = [ASSIGNORS[args.assignor]]
    if args.instance_id:
        conf["group_instance_id"] = args.instance_id
    consumer = KafkaConsumer(**conf)
    consumer.subscribe([args.topic], listener=Listener(log))

    while not stop_requested(args):
        batches = consumer.poll(timeout_ms=200, max_records=500)
        next_offsets = {}
        for tp, records in sorted(batches.items()):
            for r in records:
                log.write(f"rec {r.partition} {r.offset} {r.value.decode()}")
                next_offsets[r.partition] = r.offset + 1
        if not next_offsets:
            continue
        simulate_processing(args)
        offsets = {
            TopicPartition(args.topic, p): OffsetAndMetadata(n, "", -1)
            for p, n in sorted(next_offsets.items())
        }
        try:
            consumer.commit(offsets)
        except KafkaError as e:
            log.write(f"commitfail {e!r}")
            continue
        for p, n in sorted(next_offsets.items()):
            log.write(f"commit {p} {n}")

    consumer.close()
    log.write("closed")
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
