#!/usr/bin/env python3
"""Kafka transactions through confluent-kafka (librdkafka 2.16), for tests/tests/transactions.rs.

Every command prints JSON lines on stdout (the last one is its summary) and exits 1 with
the reason on stderr when a check fails. Helpers and reading rules: `txn_common.py`.

  isolation  --topic T [--rounds R]
      Creates T (3 partitions) and starts a read_committed consumer of it. Two transactional
      producers then run R rounds; in each, both begin a transaction and produce to two or
      three partitions, interleaved (each flushes, so their batches alternate in the log);
      then one commits and the other aborts (which one alternates). Every record is
      acknowledged before its transaction ends. Checks: the consumer that read while the
      transactions ran and a fresh read_committed consumer return exactly the committed
      records at their acknowledged offsets (per partition, in offset order); a fresh
      read_uncommitted consumer returns exactly every acknowledged record, committed or
      aborted, and nothing else (no control record); each partition's high watermark is its
      data records plus one offset per commit or abort marker written to it.
      Summary: {"check": "isolation", "transactions", "committed_records", "aborted_records",
      "live_read_committed", "read_committed", "read_uncommitted", "high_watermarks",
      "expected_high_watermarks"}.

  fencing  --topic T --transactional-id X
      Producer A (X) begins a transaction and has records acknowledged; producer B (X) calls
      init_transactions, which fences A and aborts A's open transaction; A then produces,
      flushes and commits. Checks: A fails with a fencing error (KafkaError fatal, or named
      _FENCED / PRODUCER_FENCED / INVALID_PRODUCER_EPOCH) and none of its later records is
      acknowledged; B then commits a transaction; read_committed returns exactly B's records,
      read_uncommitted A's acknowledged records and B's.
      Summary: {"check": "fencing", "fenced_error", "fenced_fatal", "fenced_message",
      "a_delivered_before", "a_delivered_after_fence", "b_committed", "read_committed",
      "read_uncommitted"}.

  watch  --topic T --partitions P --expect-prefix S --expect N [--timeout SEC]
      Creates T, starts a read_committed consumer, prints {"ready": true} once it is at the
      end of every (empty) partition, then reads until it has N records whose value starts
      with S and then up to the high watermark. Prints {"records": {"<p>": [[offset, value],
      ...]}, "waited_s": seconds from ready to the N-th record}; fails after --timeout.

  hang  --topic T --transactional-id X --transaction-timeout-ms MS --per-partition N
        --prefix S [--hold SEC]
      Begins a transaction (transaction.timeout.ms MS), produces N records to every
      partition of T (values S-p<p>-<k>), waits until they are acknowledged, prints
      {"delivered": [[partition, offset, value], ...]} and then waits to be SIGKILLed
      (fails if it is still alive after --hold seconds).

  commit  --topic T --transactional-id X --per-partition N --prefix S
      One committed transaction of N records to every partition of T; prints
      {"delivered": [[partition, offset, value], ...]}.

  read  --topic T --isolation read_committed|read_uncommitted
      A fresh consumer reads T up to its high watermarks; prints {"records": {"<p>":
      [[offset, value], ...]}, "high_watermarks": {"<p>": hw}}.

  fill  --input I --output O --partitions P --count N
      Creates I and O (P partitions each) and produces N records to I with an idempotent,
      non-transactional producer: record i has key k<i>, value in-<i, 5 digits>, partition
      i % P. Prints {"filled": N}.

  tableflow  --topic T --data-dir D [--partitions P] [--rounds R]
      Creates T (P partitions) with a key_value table (table.enable=true, committed every
      300 ms) and runs the `isolation` command's R rounds of interleaved committed and
      aborted transactions of two producers. Then producer 0 leaves a transaction open in
      every partition and producer 1 commits one after it. Checks, reading the table with
      pyiceberg (SQL catalog over D/iceberg/catalog.db) and with DuckDB (iceberg_scan):
      the table's floe.next-offsets reach each partition's last stable offset (the open
      transaction's first offset) and never go past it, and the table then holds exactly the
      rounds' committed records, as (partition, offset, key, value) rows, each once. After
      producer 0 aborts the open transaction and the high watermarks are each partition's
      data records plus its markers, the next offsets reach the high watermarks and the
      table holds exactly every committed record (the rounds' and producer 1's last one)
      and no record of an aborted transaction, while a read_uncommitted consumer of T reads
      every acknowledged record, aborted ones included.
      Summary: {"check": "tableflow", "transactions", "committed_records",
      "aborted_records", "committed_before_open", "rows_while_open": {"pyiceberg",
      "duckdb"}, "last_stable_offsets_while_open", "next_offsets_while_open", "rows":
      {"pyiceberg", "duckdb"}, "next_offsets", "high_watermarks"}.

All commands take --bootstrap HOST:PORT.
"""

import argparse
import json
import tempfile
import threading
import time
from collections import Counter

from confluent_kafka import KafkaException, Producer

from txn_common import (
    FENCING_ERRORS,
    TIMEOUT,
    Deliveries,
    Failed,
    Reader,
    by_partition,
    compare,
    count,
    create_topic,
    describe,
    emit,
    error_logger,
    flush_all,
    high_watermarks,
    log,
    partitions_of,
    read_topic,
    records_json,
    run,
    text,
    transactional_producer,
    txn_call,
)

TAG = "txn_check"


class Rounds:
    """What `interleaved_rounds` did: the acknowledged (partition, offset, value)s of the
    committed and of the aborted transactions, each record's key by value, the number of
    transactions and the commit/abort markers written to each partition."""

    def __init__(self, partitions):
        self.committed = []
        self.aborted = []
        self.keys = {}
        self.transactions = 0
        self.markers = {p: 0 for p in partitions}


def interleaved_rounds(producers, topic, partitions, rounds):
    """Two transactional producers run `rounds` rounds; in each, both begin a transaction and
    produce to two or three partitions, interleaved (each flushes, so their batches
    alternate in the log); then one commits and the other aborts (which one alternates).
    Every record is acknowledged before its transaction ends. Returns a Rounds."""
    out = Rounds(partitions)
    for r in range(rounds):
        # Each producer's transaction leaves out a different partition in some rounds, so
        # markers go only to the partitions a transaction wrote to.
        touched = [[p for p in partitions if (r + p + 2 * i) % 4 != 3] for i in range(2)]
        deliveries = [Deliveries(), Deliveries()]
        for producer in producers:
            txn_call(TAG, "begin_transaction", producer.begin_transaction)
        for chunk in range(2):
            for i, producer in enumerate(producers):
                outcome = "commit" if (r + i) % 2 == 0 else "abort"
                for p in touched[i]:
                    for k in range(5):
                        value = f"r{r:02d}-producer{i}-p{p}-c{chunk}-{k}-{outcome}"
                        out.keys[value] = f"k{k}"
                        producer.produce(topic, value=value.encode(), key=f"k{k}".encode(),
                                         partition=p, on_delivery=deliveries[i])
                flush_all(producer, deliveries[i], f"round {r}, producer {i}")
        # End both transactions; which producer commits alternates with the round.
        for i, producer in enumerate(producers):
            if (r + i) % 2 == 0:
                txn_call(TAG, "commit_transaction", producer.commit_transaction, TIMEOUT)
                out.committed.extend(deliveries[i].ok)
            else:
                txn_call(TAG, "abort_transaction", producer.abort_transaction, TIMEOUT)
                out.aborted.extend(deliveries[i].ok)
            out.transactions += 1
            for p in touched[i]:
                out.markers[p] += 1
    return out


def isolation(args):
    partitions = list(range(3))
    create_topic(args.bootstrap, args.topic, len(partitions))

    # A read_committed consumer already fetching (at the end of the empty partitions) while
    # the transactions run, polled on its own thread.
    live = Reader(args.bootstrap, args.topic, "read_committed", "live-read-committed")
    live.read_to({p: 0 for p in partitions}, TIMEOUT, "reaching the end of the empty topic")
    stop = threading.Event()
    live_failure = []

    def pump():
        try:
            while not stop.is_set():
                live.poll(0.1)
        except Exception as e:  # reported by the main thread
            live_failure.append(e)

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()

    producers = [
        transactional_producer(args.bootstrap, f"{args.topic}-producer-{i}", f"producer-{i}")
        for i in range(2)
    ]
    rounds = interleaved_rounds(producers, args.topic, partitions, args.rounds)
    committed, aborted, markers = rounds.committed, rounds.aborted, rounds.markers
    transactions = rounds.transactions
    for producer in producers:
        producer.flush(TIMEOUT)

    want_committed = by_partition(committed, partitions)
    want_all = by_partition(committed + aborted, partitions)
    expected_hw = {p: len(want_all[p]) + markers[p] for p in partitions}
    # The coordinator may write the last markers after commit/abort_transaction returned.
    deadline = time.monotonic() + 60
    while True:
        hw = high_watermarks(args.bootstrap, args.topic)
        if hw == expected_hw or any(hw[p] > expected_hw[p] for p in partitions):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)

    deadline = time.monotonic() + 90
    while not live.reached(hw) and not live_failure and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    pumper.join(TIMEOUT)
    if live_failure:
        raise Failed(f"live read_committed consumer: {live_failure[0]}")
    if not live.reached(hw):
        raise Failed(f"the live read_committed consumer did not reach the high watermarks {hw} "
                     f"within 90 s after the last transaction ended: latest EOF offsets {live.eof}")
    live_records = live.records
    live.close()

    fresh_committed, _ = read_topic(args.bootstrap, args.topic, "read_committed", "fresh-read-committed")
    fresh_uncommitted, _ = read_topic(args.bootstrap, args.topic, "read_uncommitted", "fresh-read-uncommitted")
    compare("read_committed consumer running during the transactions", live_records, want_committed)
    compare("fresh read_committed consumer", fresh_committed, want_committed)
    compare("fresh read_uncommitted consumer (every acknowledged record, no control record)",
            fresh_uncommitted, want_all)
    if hw != expected_hw:
        raise Failed(f"high watermarks {hw}, expected {expected_hw}: each partition's data records "
                     f"plus one offset per commit/abort marker ({markers})")
    emit({
        "check": "isolation",
        "transactions": transactions,
        "committed_records": len(committed),
        "aborted_records": len(aborted),
        "live_read_committed": count(live_records),
        "read_committed": count(fresh_committed),
        "read_uncommitted": count(fresh_uncommitted),
        "high_watermarks": {str(p): o for p, o in hw.items()},
        "expected_high_watermarks": {str(p): o for p, o in expected_hw.items()},
    })


def fencing(args):
    partitions = list(range(3))
    create_topic(args.bootstrap, args.topic, len(partitions))

    a = transactional_producer(args.bootstrap, args.transactional_id, "producer-A")
    a_before = Deliveries()
    txn_call(TAG, "A begin_transaction", a.begin_transaction)
    for p in partitions:
        for k in range(5):
            a.produce(args.topic, value=f"a-before-p{p}-{k}".encode(), partition=p, on_delivery=a_before)
    flush_all(a, a_before, "producer A before the fence")

    # Same transactional.id: B's init_transactions bumps the epoch, which fences A and
    # aborts A's open transaction.
    b = transactional_producer(args.bootstrap, args.transactional_id, "producer-B")

    a_after = Deliveries()
    fenced = None
    try:
        for p in partitions:
            a.produce(args.topic, value=f"a-after-p{p}".encode(), partition=p, on_delivery=a_after)
        a.flush(TIMEOUT)
    except KafkaException as e:
        fenced = e.args[0]
    except SystemError:
        # confluent-kafka raises the fatal error from inside its delivery-report dispatch
        # this way; commit_transaction below reports it properly.
        pass
    if fenced is None:
        try:
            a.commit_transaction(TIMEOUT)
        except KafkaException as e:
            fenced = e.args[0]
    try:
        a.flush(0)  # serve any delivery report still queued
    except (KafkaException, SystemError):
        pass
    if fenced is None:
        raise Failed(f"producer A committed its transaction after producer B called init_transactions "
                     f"with the same transactional.id (delivery errors: "
                     f"{[describe(e) for e in a_after.failed]})")
    if not (fenced.fatal() or fenced.name() in FENCING_ERRORS):
        raise Failed(f"producer A failed, but not with a fatal fencing error: {describe(fenced)}")
    if a_after.ok:
        raise Failed(f"records of fenced producer A were acknowledged after B's init_transactions: {a_after.ok}")

    b_deliveries = Deliveries()
    txn_call(TAG, "B begin_transaction", b.begin_transaction)
    for p in partitions:
        for k in range(5):
            b.produce(args.topic, value=f"b-p{p}-{k}".encode(), partition=p, on_delivery=b_deliveries)
    flush_all(b, b_deliveries, "producer B")
    txn_call(TAG, "B commit_transaction", b.commit_transaction, TIMEOUT)

    committed, _ = read_topic(args.bootstrap, args.topic, "read_committed", "fencing-read-committed")
    uncommitted, _ = read_topic(args.bootstrap, args.topic, "read_uncommitted", "fencing-read-uncommitted")
    compare("read_committed after the fence (B's records only)", committed,
            by_partition(b_deliveries.ok, partitions))
    compare("read_uncommitted after the fence (A's acknowledged records and B's)", uncommitted,
            by_partition(a_before.ok + b_deliveries.ok, partitions))
    emit({
        "check": "fencing",
        "fenced_error": fenced.name(),
        "fenced_fatal": fenced.fatal(),
        "fenced_message": fenced.str(),
        "a_delivered_before": len(a_before.ok),
        "a_delivered_after_fence": len(a_after.ok),
        "b_committed": len(b_deliveries.ok),
        "read_committed": count(committed),
        "read_uncommitted": count(uncommitted),
    })


def watch(args):
    create_topic(args.bootstrap, args.topic, args.partitions)
    reader = Reader(args.bootstrap, args.topic, "read_committed", "watcher")
    try:
        reader.read_to({p: 0 for p in reader.partitions}, TIMEOUT, "reaching the end of the empty topic")
        emit({"ready": True})
        ready = time.monotonic()
        deadline = ready + args.timeout
        matching = 0
        while matching < args.expect:
            if time.monotonic() > deadline:
                raise Failed(
                    f"read_committed consumer got {matching} of the {args.expect} records committed "
                    f"after the open transaction within {args.timeout} s: the last stable offset "
                    f"did not move past it (latest EOF offsets {reader.eof}, records "
                    f"{records_json(reader.records)})")
            for _, _, value in reader.poll(0.2):
                if value is not None and value.startswith(args.expect_prefix):
                    matching += 1
        waited = time.monotonic() - ready
        reader.read_to(high_watermarks(args.bootstrap, args.topic), TIMEOUT, "reading to the high watermark")
        emit({"records": records_json(reader.records), "waited_s": round(waited, 3)})
    finally:
        reader.close()


def delivered_json(deliveries):
    return [[p, o, v] for p, o, v in sorted(deliveries.ok)]


def produce_everywhere(producer, topic, partitions, per_partition, prefix, deliveries):
    for p in partitions:
        for k in range(per_partition):
            producer.produce(topic, value=f"{prefix}p{p}-{k}".encode(), partition=p, on_delivery=deliveries)


def hang(args):
    create_topic(args.bootstrap, args.topic, args.partitions)
    producer = transactional_producer(args.bootstrap, args.transactional_id, "hanging-producer",
                                      **{"transaction.timeout.ms": args.transaction_timeout_ms})
    partitions = partitions_of(producer, args.topic)
    deliveries = Deliveries()
    txn_call(TAG, "begin_transaction", producer.begin_transaction)
    produce_everywhere(producer, args.topic, partitions, args.per_partition, args.prefix, deliveries)
    flush_all(producer, deliveries, "the transaction left open")
    emit({"delivered": delivered_json(deliveries)})
    # Keep the transaction open until the test SIGKILLs this process.
    deadline = time.monotonic() + args.hold
    while time.monotonic() < deadline:
        time.sleep(0.5)
    raise Failed(f"not killed within {args.hold} s")


def commit(args):
    create_topic(args.bootstrap, args.topic, args.partitions)
    producer = transactional_producer(args.bootstrap, args.transactional_id, "committing-producer")
    deliveries = Deliveries()
    txn_call(TAG, "begin_transaction", producer.begin_transaction)
    produce_everywhere(producer, args.topic, partitions_of(producer, args.topic), args.per_partition,
                       args.prefix, deliveries)
    flush_all(producer, deliveries, "the committed transaction")
    txn_call(TAG, "commit_transaction", producer.commit_transaction, TIMEOUT)
    emit({"delivered": delivered_json(deliveries)})


def read(args):
    records, hw = read_topic(args.bootstrap, args.topic, args.isolation, f"read-{args.isolation}",
                             timeout_s=args.timeout)
    emit({"records": records_json(records), "high_watermarks": {str(p): o for p, o in hw.items()}})


# Topic configs of the `tableflow` command's topic: a key_value table committed every 300 ms.
TABLE_CONFIGS = {"table.enable": "true", "table.mode": "key_value", "table.commit.interval.ms": "300"}


class Table:
    """A topic's Iceberg table, read with pyiceberg (SQL catalog over the broker's SQLite
    file) and with DuckDB (iceberg_scan of the metadata file pyiceberg loaded, so both
    engines read the same snapshot)."""

    def __init__(self, data_dir, name):
        from pyiceberg.catalog.sql import SqlCatalog

        self.name = name
        self.catalog = SqlCatalog("floe", uri=f"sqlite:///{data_dir}/iceberg/catalog.db",
                                  warehouse=f"file://{data_dir}/iceberg/warehouse")
        self.con = None

    def load(self):
        """The table, or None while it does not exist or has no snapshot yet."""
        from pyiceberg.exceptions import NoSuchTableError
        from sqlalchemy.exc import OperationalError

        try:
            table = self.catalog.load_table(f"default.{self.name}")
        except NoSuchTableError:
            return None
        except OperationalError as e:  # the broker holds the SQLite file locked; try again
            log(TAG, f"loading table {self.name}: {e}")
            return None
        return table if table.current_snapshot() is not None else None

    @staticmethod
    def next_offsets(table):
        """{partition: next offset} the table's current snapshot says it holds the records
        before (`floe.next-offsets` in the snapshot summary)."""
        raw = table.current_snapshot().summary["floe.next-offsets"]
        if raw is None:
            raise Failed(f"snapshot {table.current_snapshot().snapshot_id} has no floe.next-offsets: "
                         f"{table.current_snapshot().summary}")
        return {int(p): o for p, o in json.loads(raw).items()}

    def wait_for(self, ends, what, timeout_s=120):
        """Waits until the table's next offsets are `ends` ({partition: offset}) in every
        partition and returns the table; fails at once if one is past its end (the table
        materialized records beyond the end it may read to)."""
        deadline = time.monotonic() + timeout_s
        seen = None
        while True:
            table = self.load()
            if table is not None:
                seen = self.next_offsets(table)
                beyond = {p: o for p, o in seen.items() if o > ends.get(p, 0)}
                if beyond:
                    raise Failed(f"{what}: the table's next offsets {seen} are past the ends {ends} "
                                 f"it may read to (partitions {sorted(beyond)})")
                if all(seen.get(p, 0) == end for p, end in ends.items()):
                    return table
            if time.monotonic() > deadline:
                raise Failed(f"{what}: the table's next offsets are {seen} after {timeout_s} s, "
                             f"expected {ends}")
            time.sleep(0.2)

    @staticmethod
    def pyiceberg_rows(table):
        rows = table.scan(selected_fields=("partition", "offset", "key", "value")).to_arrow().to_pylist()
        return sorted((r["partition"], r["offset"], text(r["key"]), text(r["value"])) for r in rows)

    def duckdb_rows(self, table):
        if self.con is None:
            import duckdb
            import duckdb_extensions

            self.con = duckdb.connect(config={"extension_directory": tempfile.mkdtemp(prefix="duckdb-ext-")})
            # iceberg needs avro; both come from the pip bundles (an autoload would download).
            duckdb_extensions.import_extension("avro", con=self.con)
            duckdb_extensions.import_extension("iceberg", con=self.con)
        rows = self.con.execute(
            f"SELECT \"partition\", \"offset\", key, value FROM iceberg_scan('{table.metadata_location}')"
        ).fetchall()
        return sorted((p, o, text(k), text(v)) for p, o, k, v in rows)


def compare_rows(what, got, want, aborted):
    """Raises Failed unless the table rows `got` are exactly `want` (sorted lists of
    (partition, offset, key, value)), naming duplicated, missing and unexpected rows and
    which of the unexpected ones are records of aborted or open transactions."""
    if got == want:
        return
    got_n, want_n = Counter(got), Counter(want)
    duplicated = [(r, n) for r, n in got_n.items() if n > 1]
    missing = sorted(want_n - got_n)
    unexpected = sorted(got_n - want_n)
    leaked = [r for r in unexpected if (r[0], r[1], r[3]) in aborted]
    raise Failed(
        f"{what}: {len(got)} rows, expected {len(want)}; {len(leaked)} rows of aborted or open "
        f"transactions (first {leaked[:5]}); {len(duplicated)} duplicated (first {duplicated[:5]}); "
        f"{len(missing)} missing (first {missing[:5]}); {len(unexpected)} unexpected "
        f"(first {unexpected[:5]})")


def wait_high_watermarks(bootstrap, topic, expected, timeout_s=60):
    """Waits until the high watermarks of `topic` are `expected` (the coordinator may write
    the last markers after commit/abort_transaction returned); fails if they are not within
    `timeout_s` or go past them."""
    deadline = time.monotonic() + timeout_s
    while True:
        hw = high_watermarks(bootstrap, topic)
        if hw == expected:
            return hw
        if any(hw.get(p, 0) > o for p, o in expected.items()) or time.monotonic() > deadline:
            raise Failed(f"high watermarks {hw}, expected {expected}: each partition's data records plus "
                         f"one offset per commit/abort marker")
        time.sleep(0.2)


def tableflow(args):
    partitions = list(range(args.partitions))
    create_topic(args.bootstrap, args.topic, len(partitions), TABLE_CONFIGS)
    table = Table(args.data_dir, args.topic)
    # The transaction left open must outlast the waits for the table (the coordinator would
    # abort it after librdkafka's default 60 s).
    producers = [
        transactional_producer(args.bootstrap, f"{args.topic}-producer-{i}", f"producer-{i}",
                               **{"transaction.timeout.ms": 600000})
        for i in range(2)
    ]
    rounds = interleaved_rounds(producers, args.topic, partitions, args.rounds)
    keys = rounds.keys

    # Producer 0 leaves a transaction open in every partition; producer 1 commits one after it.
    left_open = Deliveries()
    txn_call(TAG, "begin_transaction (left open)", producers[0].begin_transaction)
    for p in partitions:
        for k in range(5):
            value = f"open-p{p}-{k}"
            keys[value] = f"open-k{k}"
            producers[0].produce(args.topic, value=value.encode(), key=keys[value].encode(), partition=p,
                                 on_delivery=left_open)
    flush_all(producers[0], left_open, "the transaction left open")
    after = Deliveries()
    txn_call(TAG, "begin_transaction (after the open one)", producers[1].begin_transaction)
    for p in partitions:
        for k in range(5):
            value = f"after-open-p{p}-{k}"
            keys[value] = f"after-k{k}"
            producers[1].produce(args.topic, value=value.encode(), key=keys[value].encode(), partition=p,
                                 on_delivery=after)
    flush_all(producers[1], after, "the transaction committed after the open one")
    txn_call(TAG, "commit_transaction (after the open one)", producers[1].commit_transaction, TIMEOUT)

    def rows(triples):
        return sorted((p, o, keys[v], v) for p, o, v in triples)

    not_committed = {(p, o, v) for p, o, v in rounds.aborted + left_open.ok}

    def check(what, t, want):
        got_pyiceberg = Table.pyiceberg_rows(t)
        compare_rows(f"{what}, read with pyiceberg", got_pyiceberg, want, not_committed)
        got_duckdb = table.duckdb_rows(t)
        compare_rows(f"{what}, read with DuckDB", got_duckdb, want, not_committed)
        return {"pyiceberg": len(got_pyiceberg), "duckdb": len(got_duckdb)}

    # The last stable offset of every partition is the open transaction's first offset there:
    # the table reads to it and no further, so the committed transaction after it waits.
    lso = {p: min(o for q, o, _ in left_open.ok if q == p) for p in partitions}
    t = table.wait_for(lso, "while a transaction is open")
    open_rows = check("the table while a transaction is open", t, rows(rounds.committed))
    open_offsets = Table.next_offsets(t)

    txn_call(TAG, "abort_transaction (the open one)", producers[0].abort_transaction, TIMEOUT)
    for producer in producers:
        producer.flush(TIMEOUT)
    data = by_partition(rounds.committed + rounds.aborted + left_open.ok + after.ok, partitions)
    # One more marker per partition for each of the last two transactions.
    expected_hw = {p: len(data[p]) + rounds.markers[p] + 2 for p in partitions}
    hw = wait_high_watermarks(args.bootstrap, args.topic, expected_hw)
    t = table.wait_for(hw, "after every transaction ended")
    committed = rounds.committed + after.ok
    final_rows = check("the table after every transaction ended", t, rows(committed))
    # The aborted records are in the log, between the committed ones: a table that did not
    # skip them would hold them.
    in_log, _ = read_topic(args.bootstrap, args.topic, "read_uncommitted", "tableflow-read-uncommitted")
    compare("read_uncommitted consumer of the table's topic (every acknowledged record)", in_log, data)
    emit({
        "check": "tableflow",
        "transactions": rounds.transactions + 2,
        "committed_records": len(committed),
        "aborted_records": len(rounds.aborted) + len(left_open.ok),
        "rows_while_open": open_rows,
        "committed_before_open": len(rounds.committed),
        "next_offsets_while_open": {str(p): o for p, o in sorted(open_offsets.items())},
        "last_stable_offsets_while_open": {str(p): o for p, o in lso.items()},
        "rows": final_rows,
        "next_offsets": {str(p): o for p, o in sorted(Table.next_offsets(t).items())},
        "high_watermarks": {str(p): o for p, o in hw.items()},
    })


def fill(args):
    create_topic(args.bootstrap, args.input, args.partitions)
    create_topic(args.bootstrap, args.output, args.partitions)
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "error_cb": error_logger("fill"),
    })
    deliveries = Deliveries()
    for i in range(args.count):
        while True:
            try:
                producer.produce(args.input, key=f"k{i}".encode(), value=f"in-{i:05d}".encode(),
                                 partition=i % args.partitions, on_delivery=deliveries)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    flush_all(producer, deliveries, f"filling {args.input}")
    if len(deliveries.ok) != args.count:
        raise Failed(f"{len(deliveries.ok)} of {args.count} records acknowledged")
    emit({"filled": len(deliveries.ok)})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["isolation", "fencing", "watch", "hang", "commit", "read", "fill",
                                            "tableflow"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--transactional-id")
    parser.add_argument("--transaction-timeout-ms", type=int, default=60000)
    parser.add_argument("--per-partition", type=int, default=10)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--expect-prefix", default="")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--hold", type=float, default=300)
    parser.add_argument("--isolation", choices=["read_committed", "read_uncommitted"], default="read_committed")
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    commands = {"isolation": isolation, "fencing": fencing, "watch": watch, "hang": hang,
                "commit": commit, "read": read, "fill": fill, "tableflow": tableflow}
    log(TAG, f"{args.command} {vars(args)}")
    run(TAG, lambda: commands[args.command](args))


if __name__ == "__main__":
    main()
