// kafkajs 2.2.4 with SASL PLAIN over TLS against Floe.
//
// Usage: node kafkajs_security.js BOOTSTRAP CA_PEM USER PASSWORD [wrong]
//
// Connects as kafkajs users configure it (`ssl: { ca }`, `sasl: { mechanism: 'plain' }`),
// creates a topic, produces keyed messages (acks -1), reads them back with a consumer
// group and compares them. With "wrong", expects a KafkaJSSASLAuthenticationError.
//
// Prints "OK" at the end; on a mismatch prints "FAIL: ..." and exits with status 1.

'use strict';

const fs = require('fs');
const { Kafka, Partitioners, logLevel } = require('kafkajs');

const MESSAGES = 300;
const TOPIC = 'kafkajs-secure';

function fail(message) {
  console.log(`FAIL: ${message}`);
  process.exit(1);
}

async function main() {
  const [bootstrap, ca, username, password, wrong] = process.argv.slice(2);
  const kafka = new Kafka({
    clientId: 'kafkajs-security',
    brokers: [bootstrap],
    ssl: { ca: [fs.readFileSync(ca, 'utf8')] },
    sasl: { mechanism: 'plain', username, password },
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 },
  });
  const admin = kafka.admin();
  if (wrong) {
    try {
      await admin.connect();
    } catch (e) {
      if (e.name === 'KafkaJSSASLAuthenticationError' || /SASL|auth/i.test(String(e.message))) {
        console.log(`AUTH FAILED ${e.name}: ${e.message}`);
        console.log('OK');
        return;
      }
      fail(`unexpected error ${e.name}: ${e.message}`);
    }
    fail('a wrong password was accepted');
  }
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }] });
  await admin.disconnect();
  console.log(`created ${TOPIC}`);

  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < MESSAGES; i++) messages.push({ key: `${i}`, value: `value-${i}` });
  await producer.send({ topic: TOPIC, acks: -1, messages });
  await producer.disconnect();
  console.log(`produced ${MESSAGES}`);

  const consumer = kafka.consumer({ groupId: `kafkajs-security-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  const seen = new Set();
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${seen.size} of ${MESSAGES}`)), 90000);
    consumer.run({
      eachMessage: async ({ message }) => {
        const i = Number(message.key.toString());
        if (message.value.toString() !== `value-${i}`) reject(new Error(`record ${i} differs`));
        seen.add(i);
        if (seen.size === MESSAGES) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  console.log(`consumed ${seen.size}`);
  console.log('OK');
}

main().catch((e) => fail(`${e.name}: ${e.message}`));
