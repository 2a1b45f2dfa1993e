"""The broker stops while a transaction commits (acceptance 5 of the transactions issue).

Commands:
  stall   creates the topic, runs one transaction over its partitions, writes what was
          acknowledged to --out, removes --faults-off (so the broker's slow-sync rule on one
          partition applies) and commits: the broker stalls while writing the markers, and
          the test kills it there. This process is killed too.
  verify  after the restart: read_committed returns every acknowledged record, each
          partition's log end is the records plus exactly one marker, and the same
          transactional id runs a new transaction.
"""

import argparse
import json
import os

from txn_common import (Deliveries, by_partition, compare, count, create_topic, emit, flush_all,
                        high_watermarks, log, read_topic, run, transactional_producer, txn_call,
                        TIMEOUT, Failed)

TAG = "txn_crash"


def stall(args):
    create_topic(args.bootstrap, args.topic, args.partitions)
    producer = transactional_producer(args.bootstrap, args.transactional_id, TAG)
    deliveries = Deliveries()
    txn_call(TAG, "begin_transaction", producer.begin_transaction)
    for p in range(args.partitions):
        for k in range(args.count):
            producer.produce(args.topic, value=f"p{p}-{k}".encode(), partition=p,
                             on_delivery=deliveries)
    flush_all(producer, deliveries, "the transaction's records")
    with open(args.out + ".tmp", "w") as f:
        json.dump(deliveries.ok, f)
    os.rename(args.out + ".tmp", args.out)
    os.remove(args.faults_off)
    log(TAG, "committing; the broker stalls on the markers")
    producer.commit_transaction(TIMEOUT * 10)
    raise Failed("commit_transaction returned although the broker should have been killed")


def verify(args):
    with open(args.out) as f:
        delivered = [tuple(r) for r in json.load(f)]
    partitions = list(range(args.partitions))
    committed, _ = read_topic(args.bootstrap, args.topic, "read_committed", "crash-committed")
    compare("read_committed after the restart", committed, by_partition(delivered, partitions))
    hw = high_watermarks(args.bootstrap, args.topic)
    want = {p: args.count + 1 for p in partitions}
    if hw != want:
        raise Failed(f"log ends {hw}, expected {want} (the records and one marker each)")
    # The same transactional id goes on: a new producer, a new transaction.
    producer = transactional_producer(args.bootstrap, args.transactional_id, TAG)
    more = Deliveries()
    txn_call(TAG, "begin_transaction", producer.begin_transaction)
    for p in partitions:
        producer.produce(args.topic, value=f"after-p{p}".encode(), partition=p, on_delivery=more)
    flush_all(producer, more, "the next transaction")
    txn_call(TAG, "commit_transaction", producer.commit_transaction, TIMEOUT)
    after, _ = read_topic(args.bootstrap, args.topic, "read_committed", "crash-after")
    compare("read_committed after the next transaction", after,
            by_partition(delivered + more.ok, partitions))
    emit({"check": "verify", "committed": count(committed), "high_watermarks": {str(p): o for p, o in hw.items()},
          "after": count(after)})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["stall", "verify"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--transactional-id", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--out", required=True)
    parser.add_argument("--faults-off", default="")
    args = parser.parse_args()
    run(TAG, lambda: {"stall": stall, "verify": verify}[args.command](args))


if __name__ == "__main__":
    main()
