#!/usr/bin/env node
/**
 * `npm run soak -- pipeline --messages 1000000 --backend nats|redis [--kill-ms 10000] [--keys 1000]`
 *
 * The long fault run: the same test CI runs small (test/e2e/pipeline/faults.test.ts,
 * three stage processes, one SIGKILLed and restarted every --kill-ms), here with as many
 * messages as asked, on one broker, over --keys ordering keys (a key's messages go one at a
 * time through each stage, so the key count bounds how many are in flight). It prints progress every 30 s and a result line (messages,
 * kills, lost, reordered, duplicates, seconds, msg/s), then fails if anything was lost,
 * reordered or carried another idempotency key. Needs `npm run build` (the stages run the built CLI).
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

const usage =
  'usage: npm run soak -- pipeline --messages N --backend nats|redis [--kill-ms MS] [--keys K] (defaults: 1000000 messages, a kill every 10000 ms, 1000 keys)';
let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      messages: { type: 'string', default: '1000000' },
      backend: { type: 'string' },
      'kill-ms': { type: 'string', default: '10000' },
      keys: { type: 'string', default: '1000' },
    },
  });
} catch (err) {
  console.error(`soak: ${err.message}\n${usage}`);
  process.exit(2);
}
const { positionals, values } = parsed;
const messages = Number(values.messages);
const killMs = Number(values['kill-ms']);
const keys = Number(values.keys);
if (positionals[0] !== 'pipeline' || positionals.length !== 1) {
  console.error(`soak: the only soak run is "pipeline"\n${usage}`);
  process.exit(2);
}
if (values.backend !== 'nats' && values.backend !== 'redis') {
  console.error(`soak: --backend must be nats or redis (got ${values.backend ?? 'nothing'})\n${usage}`);
  process.exit(2);
}
if (
  !Number.isInteger(messages) ||
  messages < 100 ||
  !Number.isInteger(killMs) ||
  killMs < 500 ||
  !Number.isInteger(keys) ||
  keys < 1
) {
  console.error(
    `soak: --messages must be an integer >= 100, --kill-ms one >= 500, --keys one >= 1\n${usage}`,
  );
  process.exit(2);
}

const r = spawnSync(
  'npx',
  [
    'vitest',
    'run',
    '--project',
    'e2e',
    'test/e2e/pipeline/faults.test.ts',
    '-t',
    `pipeline faults on ${values.backend} \\d+ messages`,
    // The test's own deadline (20 ms a message) and its stall check end it first.
    '--testTimeout',
    String(Math.max(600_000, messages * 30)),
  ],
  {
    stdio: 'inherit',
    env: {
      ...process.env,
      TRELLIS_PIPELINE_FAULT_MESSAGES: String(messages),
      TRELLIS_PIPELINE_FAULT_KILL_MS: String(killMs),
      TRELLIS_PIPELINE_FAULT_KEYS: String(keys),
    },
  },
);
process.exit(r.status ?? 1);
