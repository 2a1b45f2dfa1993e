// Kafka transactions with kafkajs 2.2.4 against Floe.
//
// Usage: node kafkajs_txn_check.js BOOTSTRAP
//
// 1. A producer with transactionalId, idempotent: true and maxInFlightRequests: 1 runs five
//    transactions over both partitions of a topic: commit, abort, commit, abort, commit (two
//    sends of 10 messages per partition in each). The first (committed) transaction also
//    sends offsets {0: 3, 1: 4} for a consumer group, the second (aborted) one {0: 7, 1: 8}.
//    Every acknowledged message's partition and offset are remembered.
// 2. The topic's end offsets (kafkajs's admin lists them read_committed: the last stable
//    offset) become exactly the data messages plus one commit/abort marker per transaction
//    in each partition.
// 3. A consumer group with readUncommitted: false (read_committed) reads every partition up
//    to its last committed message: it gets exactly the committed messages at their
//    acknowledged offsets, in offset order, each once; an aborted one is a failure.
// 4. A consumer group with readUncommitted: true reads exactly every acknowledged message,
//    committed or aborted (never a commit/abort marker).
// 5. The group's committed offsets (admin.fetchOffsets) are those of the committed
//    transaction, {0: 3, 1: 4}; the aborted transaction's are never seen.
//
// Prints one line per step and "OK" at the end; on a mismatch prints "FAIL: ..." and exits 1.

'use strict';

const { Kafka, Partitioners, logLevel } = require('kafkajs');

const TOPIC = 'kafkajs-txn';
const PARTITIONS = 2;
const SENDS = 2; // sends per transaction
const PER_SEND = 10; // messages per partition and send
const OFFSETS_GROUP = 'kafkajs-txn-offsets';
const TRANSACTIONS = [
  { outcome: 'commit', offsets: [3, 4] },
  { outcome: 'abort', offsets: [7, 8] },
  { outcome: 'commit' },
  { outcome: 'abort' },
  { outcome: 'commit' },
];

function fail(message) {
  console.log(`FAIL: ${message}`);
  process.exit(1);
}

function check(ok, message) {
  if (!ok) fail(typeof message === 'function' ? message() : message);
}

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// [partition] -> [{ offset, value }] sorted by offset.
function byPartition(records) {
  const out = [];
  for (let p = 0; p < PARTITIONS; p++) out.push([]);
  for (const r of records) out[r.partition].push({ offset: r.offset, value: r.value });
  for (const rs of out) rs.sort((a, b) => a.offset - b.offset);
  return out;
}

// Fails unless `got` and `want` (byPartition) are equal, naming the first difference.
function compare(what, got, want) {
  for (let p = 0; p < PARTITIONS; p++) {
    const g = got[p].map((r) => `${r.offset}:${r.value}`);
    const w = want[p].map((r) => `${r.offset}:${r.value}`);
    if (JSON.stringify(g) === JSON.stringify(w)) continue;
    const gs = new Set(g);
    const ws = new Set(w);
    const unexpected = g.filter((r) => !ws.has(r));
    const missing = w.filter((r) => !gs.has(r));
    const i = g.findIndex((r, k) => r !== w[k]);
    fail(`${what}: partition ${p}: read ${g.length} messages, expected ${w.length}; `
      + `${unexpected.length} unexpected (first ${JSON.stringify(unexpected.slice(0, 5))}); `
      + `${missing.length} missing (first ${JSON.stringify(missing.slice(0, 5))}); first difference at `
      + `index ${i}: read ${g[i]}, expected ${w[i]}`);
  }
}

// Runs the transactions; returns { committed, aborted } lists of { partition, offset, value }.
async function produce(kafka) {
  const producer = kafka.producer({
    transactionalId: 'kafkajs-txn-producer',
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner, // every message names its partition
  });
  await producer.connect();
  const committed = [];
  const aborted = [];
  for (const [t, spec] of TRANSACTIONS.entries()) {
    const txn = await producer.transaction();
    const acked = [];
    for (let s = 0; s < SENDS; s++) {
      const messages = [];
      for (let p = 0; p < PARTITIONS; p++) {
        for (let k = 0; k < PER_SEND; k++) {
          messages.push({ key: `k${k}`, value: `t${t}-${spec.outcome}-p${p}-s${s}-${k}`, partition: p });
        }
      }
      const results = await txn.send({ topic: TOPIC, messages });
      check(results.length === PARTITIONS, () => `transaction ${t}: send answered for ${JSON.stringify(results)}`);
      for (const r of results) {
        check(r.errorCode === 0, () => `transaction ${t}: produce error ${JSON.stringify(r)}`);
        // Messages of one partition are appended in the order they were sent.
        let offset = Number(r.baseOffset);
        for (const m of messages) {
          if (m.partition === r.partition) {
            acked.push({ partition: r.partition, offset, value: m.value });
            offset += 1;
          }
        }
      }
    }
    check(acked.length === SENDS * PARTITIONS * PER_SEND,
      () => `transaction ${t}: ${acked.length} messages acknowledged`);
    if (spec.offsets) {
      await txn.sendOffsets({
        consumerGroupId: OFFSETS_GROUP,
        topics: [{
          topic: TOPIC,
          partitions: spec.offsets.map((offset, partition) => ({ partition, offset: String(offset) })),
        }],
      });
    }
    if (spec.outcome === 'commit') {
      await txn.commit();
      committed.push(...acked);
    } else {
      await txn.abort();
      aborted.push(...acked);
    }
    console.log(`transaction ${t}: ${acked.length} messages acknowledged, ${spec.outcome === 'commit' ? 'committed' : 'aborted'}`
      + (spec.offsets ? `, offsets ${JSON.stringify(spec.offsets)} sent` : ''));
  }
  await producer.disconnect();
  return { committed, aborted };
}

// A consumer group reading every partition from the beginning until it has read the message
// at `last[p]` in each partition; returns byPartition of everything it read.
async function readUntil(kafka, groupId, readUncommitted, last) {
  const consumer = kafka.consumer({ groupId, readUncommitted, maxWaitTimeInMs: 500 });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    console.error(`${groupId}: consumer crashed (restart: ${payload.restart}): ${payload.error}`);
    if (!payload.restart) fail(`${groupId}: consumer crashed: ${payload.error}`);
  });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  const read = [];
  const reached = new Set();
  let resolveDone;
  const done = new Promise((resolve) => { resolveDone = resolve; });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const offset = Number(message.offset);
      read.push({ partition, offset, value: message.value ? message.value.toString() : null });
      if (offset >= last[partition]) reached.add(partition);
      if (reached.size === PARTITIONS) resolveDone();
    },
  });
  try {
    await withTimeout(done, 90000, `${groupId}: reading to offsets ${JSON.stringify(last)}`);
  } catch (e) {
    fail(`${e.message}; read ${read.length} messages, reached partitions ${JSON.stringify([...reached])}`);
  }
  await consumer.disconnect();
  return byPartition(read);
}

async function main() {
  const bootstrap = process.argv[2];
  if (!bootstrap) {
    console.error('usage: node kafkajs_txn_check.js BOOTSTRAP');
    process.exit(2);
  }
  const kafka = new Kafka({
    clientId: 'floe-kafkajs-txn-check',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 8 },
  });

  const admin = kafka.admin();
  await admin.connect();
  check(await admin.createTopics({
    topics: [{ topic: TOPIC, numPartitions: PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
  }) === true, `createTopics(${TOPIC}) reported that it already exists`);

  const { committed, aborted } = await produce(kafka);
  const wantCommitted = byPartition(committed);
  const wantAll = byPartition(committed.concat(aborted));

  // Every transaction wrote to both partitions: one marker each. The coordinator may write
  // the last markers after commit() returned.
  const wantEnds = wantAll.map((rs) => rs.length + TRANSACTIONS.length);
  const endsDeadline = Date.now() + 60000;
  for (;;) {
    const ends = (await admin.fetchTopicOffsets(TOPIC))
      .sort((a, b) => a.partition - b.partition)
      .map((p) => Number(p.high));
    if (JSON.stringify(ends) === JSON.stringify(wantEnds)) break;
    check(ends.every((e, p) => e <= wantEnds[p]) && Date.now() < endsDeadline,
      () => `end offsets ${JSON.stringify(ends)}, expected ${JSON.stringify(wantEnds)}: the data `
        + `messages plus one marker per transaction in each partition`);
    await sleep(200);
  }
  console.log(`end offsets ${JSON.stringify(wantEnds)}: data messages plus ${TRANSACTIONS.length} markers`);

  const lastCommitted = wantCommitted.map((rs) => rs[rs.length - 1].offset);
  const readCommitted = await readUntil(kafka, 'kafkajs-txn-read-committed', false, lastCommitted);
  compare('read_committed consumer (readUncommitted: false)', readCommitted, wantCommitted);
  console.log(`read_committed: exactly the ${committed.length} committed messages, none of the `
    + `${aborted.length} aborted ones`);

  const lastAll = wantAll.map((rs) => rs[rs.length - 1].offset);
  const readAll = await readUntil(kafka, 'kafkajs-txn-read-uncommitted', true, lastAll);
  compare('read_uncommitted consumer (readUncommitted: true)', readAll, wantAll);
  console.log(`read_uncommitted: exactly the ${committed.length + aborted.length} acknowledged messages`);

  // sendOffsets: the committed transaction's offsets, never the aborted one's.
  const wantOffsets = JSON.stringify(TRANSACTIONS[0].offsets);
  const abortedOffsets = JSON.stringify(TRANSACTIONS[1].offsets);
  const offsetsDeadline = Date.now() + 60000;
  for (;;) {
    const [topic] = await admin.fetchOffsets({ groupId: OFFSETS_GROUP, topics: [TOPIC] });
    const offsets = topic.partitions
      .sort((a, b) => a.partition - b.partition)
      .map((p) => Number(p.offset));
    const got = JSON.stringify(offsets);
    if (got === wantOffsets) break;
    check(offsets.every((o, p) => o !== TRANSACTIONS[1].offsets[p]),
      () => `${OFFSETS_GROUP} has an offset of the aborted transaction: ${got}`);
    check(Date.now() < offsetsDeadline,
      () => `${OFFSETS_GROUP}: committed offsets ${got} after 60 s, expected ${wantOffsets}`);
    await sleep(200);
  }
  console.log(`sendOffsets: ${OFFSETS_GROUP} committed ${wantOffsets} (the aborted transaction's `
    + `${abortedOffsets} discarded)`);
  await admin.disconnect();
  console.log('OK');
}

main().then(
  () => process.exit(0),
  (e) => fail(`${e && e.stack ? e.stack : e}`),
);
