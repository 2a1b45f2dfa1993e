// A consumer-group member on kafkajs 2.2.4: subscribe, process, commit.
//
// Usage: node groups_member.js --bootstrap B --group G --topic T --log PATH --stop-file PATH
//          [--session-timeout-ms 6000] [--heartbeat-ms 1000] [--process-ms 0]
//
// The same flags and event log as the Python members (tests/clients/python/groups_common.py):
// "own P,P", "rec P O V", "commit P N", "commitfail MSG", "error MSG", "closed", each line
// written with a synchronous write so it survives a SIGKILL. kafkajs is eager and only has
// its round-robin assignor: every rebalance revokes everything ("own -") and GROUP_JOIN
// carries the new full assignment. Each batch is processed, then its next offset is
// committed with the batch's awaited commitOffsetsIfNecessary(offsets) (autoCommit off).

'use strict';

const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

function parseArgs(argv) {
  const args = { sessionTimeoutMs: 6000, heartbeatMs: 1000, processMs: 0 };
  const names = {
    '--bootstrap': 'bootstrap', '--group': 'group', '--topic': 'topic', '--log': 'log',
    '--stop-file': 'stopFile', '--session-timeout-ms': 'sessionTimeoutMs',
    '--heartbeat-ms': 'heartbeatMs', '--process-ms': 'processMs',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const name = names[argv[i]];
    if (!name || i + 1 >= argv.length) {
      console.error(`unknown or incomplete flag ${argv[i]}`);
      process.exit(2);
    }
    args[name] = argv[i + 1];
  }
  for (const required of ['bootstrap', 'group', 'topic', 'log', 'stopFile']) {
    if (!args[required]) {
      console.error(`missing --${required}`);
      process.exit(2);
    }
  }
  args.sessionTimeoutMs = Number(args.sessionTimeoutMs);
  args.heartbeatMs = Number(args.heartbeatMs);
  args.processMs = Number(args.processMs);
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const fd = fs.openSync(args.log, 'a');
  const write = (line) => fs.writeSync(fd, line + '\n');
  const own = (partitions) =>
    write('own ' + ([...partitions].sort((a, b) => a - b).join(',') || '-'));

  const kafka = new Kafka({
    clientId: 'floe-groups-kafkajs',
    brokers: [args.bootstrap],
    logLevel: logLevel.WARN,
    logCreator: () => ({ level, log }) => write(`error kafkajs ${level}: ${log.message}`),
  });
  const consumer = kafka.consumer({
    groupId: args.group,
    sessionTimeout: args.sessionTimeoutMs,
    heartbeatInterval: args.heartbeatMs,
    // A crashed consumer is a failed run, not something to restart behind the test's back.
    retry: { retries: 5, restartOnFailure: async () => false },
  });
  consumer.on(consumer.events.REBALANCING, () => own([]));
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    own((e.payload.memberAssignment[args.topic] || []).map(Number));
  });
  consumer.on(consumer.events.CRASH, (e) => {
    write(`error crash: ${e.payload.error && e.payload.error.message}`);
    process.exit(1);
  });

  await consumer.connect();
  await consumer.subscribe({ topic: args.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, isRunning, isStale }) => {
      let last = null;
      for (const m of batch.messages) {
        if (!isRunning() || isStale()) break;
        write(`rec ${batch.partition} ${m.offset} ${m.value.toString()}`);
        resolveOffset(m.offset);
        last = m.offset;
      }
      if (last === null) return;
      if (args.processMs) await new Promise((resolve) => setTimeout(resolve, args.processMs));
      const next = (BigInt(last) + 1n).toString();
      try {
        // The batch's own commit sends OffsetCommit and awaits the answer even while the
        // consumer is stopping; consumer.commitOffsets() silently does nothing once
        // disconnect() has begun, so a record processed then would look committed.
        await commitOffsetsIfNecessary({
          topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }],
        });
      } catch (e) {
        write(`commitfail ${e.type || e.name}: ${e.message}`);
        throw e;
      }
      write(`commit ${batch.partition} ${next}`);
    },
  });

  await new Promise((resolve) => {
    const timer = setInterval(() => {
      if (fs.existsSync(args.stopFile)) {
        clearInterval(timer);
        resolve();
      }
    }, 100);
  });
  await consumer.disconnect();
  write('closed');
  fs.closeSync(fd);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
