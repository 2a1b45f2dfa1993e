#!/usr/bin/env python3
"""Exactly-once consume-transform-produce on confluent-kafka (librdkafka 2.16), for
tests/tests/transactions.rs, which SIGKILLs it at random points and starts it again.

Usage: txn_ctp.py --bootstrap HOST:PORT --input I --output O --group G --transactional-id X
       [--batch N] [--process-ms MS] [--timeout SEC]

The app first calls init_transactions with X, the same id on every start: that fences any
earlier instance, and the coordinator ends that instance's open transaction before the new
one gets its epoch. It then subscribes to I in group G (isolation.level read_committed,
enable.auto.commit false, earliest reset, partition EOF events). For each poll of up to N
records it begins a transaction, produces every record to O on the same partition with the
same key and the value in-<n> turned into out-<n>, waits --process-ms (so a SIGKILL often
lands inside a transaction), sends the consumed offsets (the next offset of each partition)
to the transaction with the consumer's group metadata, and commits. An abortable error
aborts the transaction and rewinds the consumer to the group's committed offsets.

Stdout, one JSON line each:
  {"initialized": true}                           after init_transactions
  {"txn": n, "records": k, "processed": total}    after each transaction this run committed
  {"aborted": n, "error": description}            after a transaction this run aborted
  {"done": true, "transactions": n, "records": total, "aborted": n}
      once every partition of I has been read to its end (I is written before the app
      starts) and everything read is committed; the app then closes and exits 0.
Exits 1 with a message on stderr after --timeout seconds or on any other error.
"""

import argparse
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from txn_common import (
    TIMEOUT,
    Failed,
    describe,
    emit,
    error_logger,
    high_watermarks,
    log,
    run,
    text,
    transactional_producer,
    txn_call,
)

TAG = "txn_ctp"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--transactional-id", required=True)
    p.add_argument("--batch", type=int, default=30, help="records per transaction at most")
    p.add_argument("--process-ms", type=int, default=0,
                   help="time spent inside each transaction between producing and committing")
    p.add_argument("--timeout", type=float, default=280, help="give up after this many seconds")
    return p.parse_args()


def app(args):
    deadline = time.monotonic() + args.timeout
    producer = transactional_producer(args.bootstrap, args.transactional_id, "ctp-producer")
    emit({"initialized": True})
    ends = high_watermarks(args.bootstrap, args.input)

    # Offset of each owned partition's latest EOF event since it was assigned or rewound.
    eof = {}

    def forget(consumer, partitions):
        for tp in partitions:
            eof.pop(tp.partition, None)

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 60000,
        "error_cb": error_logger("ctp-consumer"),
    })
    consumer.subscribe([args.input], on_assign=forget, on_revoke=forget, on_lost=forget)

    def transact(batch):
        txn_call(TAG, "begin_transaction", producer.begin_transaction)
        next_offsets = {}
        for m in batch:
            value = text(m.value())
            if value is None or not value.startswith("in-"):
                raise Failed(f"unexpected input record at {m.partition()}/{m.offset()}: {value!r}")
            producer.produce(args.output, key=m.key(), value=("out-" + value[3:]).encode(),
                             partition=m.partition())
            next_offsets[m.partition()] = m.offset() + 1
        if args.process_ms:
            time.sleep(args.process_ms / 1000)
        offsets = [TopicPartition(args.input, p, o) for p, o in sorted(next_offsets.items())]
        txn_call(TAG, "send_offsets_to_transaction", producer.send_offsets_to_transaction,
                 offsets, consumer.consumer_group_metadata(), TIMEOUT)
        txn_call(TAG, "commit_transaction", producer.commit_transaction, TIMEOUT)

    def rewind():
        """Back to the group's committed offsets: what the aborted transaction consumed is
        consumed again."""
        assignment = consumer.assignment()
        if not assignment:
            return
        for tp in consumer.committed(assignment, timeout=TIMEOUT):
            if tp.error:
                raise Failed(f"committed offset of {tp.topic}/{tp.partition}: {tp.error}")
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            eof.pop(tp.partition, None)

    transactions = processed = aborted = 0
    while not all(eof.get(p, -1) >= end for p, end in ends.items()):
        if time.monotonic() > deadline:
            raise Failed(f"not done within {args.timeout} s: latest EOF offsets {eof}, input ends {ends}, "
                         f"assignment {[tp.partition for tp in consumer.assignment()]}, "
                         f"{processed} records in {transactions} transactions this run")
        batch = []
        for m in consumer.consume(num_messages=args.batch, timeout=0.2):
            err = m.error()
            if err is None:
                batch.append(m)
            elif err.code() == KafkaError._PARTITION_EOF:
                eof[m.partition()] = m.offset()
            elif err.fatal():
                raise Failed(f"fatal consumer error {describe(err)}")
            else:
                log(TAG, f"consumer error {describe(err)}")
        if not batch:
            continue
        try:
            transact(batch)
        except KafkaException as e:
            err = e.args[0]
            if not err.txn_requires_abort():
                raise Failed(f"transaction failed: {describe(err)}")
            txn_call(TAG, "abort_transaction", producer.abort_transaction, TIMEOUT)
            aborted += 1
            emit({"aborted": aborted, "error": describe(err)})
            rewind()
            continue
        transactions += 1
        processed += len(batch)
        emit({"txn": transactions, "records": len(batch), "processed": processed})

    emit({"done": True, "transactions": transactions, "records": processed, "aborted": aborted})
    consumer.close()
    producer.flush(TIMEOUT)


def main():
    args = parse_args()
    run(TAG, lambda: app(args))


if __name__ == "__main__":
    main()
