// End-to-end check of Floe with kafkajs 2.2.4.
//
// Usage: node kafkajs_check.js BOOTSTRAP
//
// 1. Admin: createTopics (2 partitions), fetchTopicMetadata.
// 2. Producer (acks -1) sends keyed messages with headers and remembers where each one was
//    acknowledged.
// 3. A consumer group (subscribe fromBeginning + run/eachMessage, as Kafka users write it)
//    reads them back; every message must be at its acknowledged partition and offset with
//    the same key, value and headers, exactly once.
// 4. Admin: deleteTopics, then listTopics no longer shows the topic.
//
// Prints one line per step; on a mismatch prints "FAIL: ..." and exits with status 1.

'use strict';

const { Kafka, Partitioners, logLevel } = require('kafkajs');

const MESSAGES = 1000;
const TOPIC = 'kafkajs-data';
const ADMIN_TOPIC = 'kafkajs-admin';

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

async function main() {
  const bootstrap = process.argv[2];
  if (!bootstrap) {
    console.error('usage: node kafkajs_check.js BOOTSTRAP');
    process.exit(2);
  }
  const kafka = new Kafka({
    clientId: 'floe-kafkajs-check',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 8 },
  });

  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({
    topics: [{ topic: TOPIC, numPartitions: 2, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  check(created === true, `createTopics(${TOPIC}) returned ${created}`);
  const meta = await admin.fetchTopicMetadata({ topics: [TOPIC] });
  check(meta.topics.length === 1 && meta.topics[0].name === TOPIC,
    () => `fetchTopicMetadata: ${JSON.stringify(meta)}`);
  check(meta.topics[0].partitions.length === 2,
    () => `fetchTopicMetadata: ${TOPIC} has ${meta.topics[0].partitions.length} partitions, expected 2`);
  console.log(`created ${TOPIC} with 2 partitions`);

  // Produce.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  // key -> { partition, offset } as acknowledged. Each message names its partition, so the
  // offsets follow from the base offset that the produce response gives per partition (the
  // messages of one partition are appended in the order they were sent).
  const acked = new Map();
  const batch = 100;
  for (let start = 0; start < MESSAGES; start += batch) {
    const messages = [];
    for (let i = start; i < start + batch; i++) {
      messages.push({
        key: `key-${i}`,
        value: `value-${i}-${'y'.repeat(i % 53)}`,
        partition: i % 2,
        headers: { seq: `h-${i}`, client: 'kafkajs' },
      });
    }
    const results = await producer.send({ topic: TOPIC, acks: -1, messages });
    for (const r of results) {
      check(r.errorCode === 0, () => `produce error ${JSON.stringify(r)}`);
      let offset = Number(r.baseOffset);
      for (const m of messages) {
        if (m.partition === r.partition) {
          acked.set(m.key, { partition: r.partition, offset });
          offset += 1;
        }
      }
    }
  }
  check(acked.size === MESSAGES, () => `${acked.size} of ${MESSAGES} messages acknowledged`);
  await producer.disconnect();
  console.log(`produced ${acked.size} messages (acks -1)`);

  const offsets = await admin.fetchTopicOffsets(TOPIC);
  let total = 0;
  for (const p of offsets) {
    check(p.low === '0', () => `partition ${p.partition}: low watermark ${p.low}, expected 0`);
    total += Number(p.high);
  }
  check(total === MESSAGES, () => `high watermarks ${JSON.stringify(offsets)} sum to ${total}, expected ${MESSAGES}`);
  check(offsets.every((p) => Number(p.high) > 0),
    () => `messages did not spread over both partitions: ${JSON.stringify(offsets)}`);

  // Consume with a group.
  const consumer = kafka.consumer({ groupId: `floe-kafkajs-${process.pid}` });
  // kafkajs restarts a crashed consumer on retriable errors; a crash it gives up on fails
  // the check at once, with kafkajs's error.
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    console.error(`consumer crashed (restart: ${payload.restart}): ${payload.error}`);
    if (!payload.restart) fail(`consumer crashed: ${payload.error}`);
  });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  const seen = new Map(); // key -> { partition, offset }
  const nextOffset = new Map();
  let problem = null;
  let resolveDone;
  const done = new Promise((resolve) => { resolveDone = resolve; });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const key = message.key ? message.key.toString() : null;
      const where = `${topic}-${partition}@${message.offset}`;
      const next = nextOffset.get(partition) || 0;
      if (problem === null) {
        const i = key === null ? NaN : Number(key.slice('key-'.length));
        const wantValue = `value-${i}-${'y'.repeat(i % 53)}`;
        const headers = message.headers || {};
        if (Number(message.offset) !== next) {
          problem = `${where}: expected offset ${next} next`;
        } else if (key === null || !(i >= 0 && i < MESSAGES)) {
          problem = `${where}: unexpected key ${key}`;
        } else if (acked.get(key).partition !== partition
            || acked.get(key).offset !== Number(message.offset)) {
          problem = `${where}: ${key} was acknowledged at ${JSON.stringify(acked.get(key))}`;
        } else if (seen.has(key)) {
          problem = `${where}: ${key} already read at ${JSON.stringify(seen.get(key))}`;
        } else if (message.value.toString() !== wantValue) {
          problem = `${where}: value ${message.value} for ${key}, expected ${wantValue}`;
        } else if (String(headers.seq) !== `h-${i}` || String(headers.client) !== 'kafkajs') {
          problem = `${where}: headers ${JSON.stringify(headers)} for ${key}`;
        }
      }
      nextOffset.set(partition, Number(message.offset) + 1);
      if (key !== null) seen.set(key, { partition, offset: message.offset });
      if (problem !== null || seen.size === MESSAGES) resolveDone();
    },
  });
  try {
    await withTimeout(done, 90000, `consuming ${MESSAGES} messages with a group`);
  } catch (e) {
    fail(`${e.message}; read ${seen.size} so far`);
  }
  check(problem === null, () => problem);
  for (const p of offsets) {
    const got = nextOffset.get(p.partition) || 0;
    check(got === Number(p.high),
      () => `partition ${p.partition}: consumed up to ${got}, high watermark ${p.high}`);
  }
  await consumer.disconnect();
  console.log(`consumed ${seen.size} messages with a consumer group`);

  // Admin round trip.
  check(await admin.createTopics({ topics: [{ topic: ADMIN_TOPIC, numPartitions: 3 }] }) === true,
    `createTopics(${ADMIN_TOPIC}) reported that it already exists`);
  const adminMeta = await admin.fetchTopicMetadata({ topics: [ADMIN_TOPIC] });
  check(adminMeta.topics[0].partitions.length === 3,
    () => `fetchTopicMetadata: ${ADMIN_TOPIC} has ${adminMeta.topics[0].partitions.length} partitions, expected 3`);
  await admin.deleteTopics({ topics: [ADMIN_TOPIC] });
  const deadline = Date.now() + 30000;
  let topics = await admin.listTopics();
  while (topics.includes(ADMIN_TOPIC)) {
    check(Date.now() < deadline, () => `listTopics still shows ${ADMIN_TOPIC} 30 s after deleteTopics`);
    await new Promise((r) => setTimeout(r, 200));
    topics = await admin.listTopics();
  }
  check(topics.includes(TOPIC), () => `listTopics lost ${TOPIC}: ${JSON.stringify(topics)}`);
  console.log(`created, described and deleted ${ADMIN_TOPIC}`);
  await admin.disconnect();
  console.log('OK');
}

main().then(
  () => process.exit(0),
  (e) => fail(`${e && e.stack ? e.stack : e}`),
);
