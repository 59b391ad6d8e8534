/**
 * Fault tests for pipelines across processes, on real NATS JetStream and Redis Streams: three
 * stage processes (`trellis pipeline run FILE --stage NAME`), one SIGKILLed and restarted
 * periodically, a poison message, a broker connection cut, a slow sink.
 *
 * The issue's full run is 1,000,000 messages with a kill every 10 s; `npm test` runs a smaller
 * one. TRELLIS_PIPELINE_FAULT_MESSAGES (default 400) and TRELLIS_PIPELINE_FAULT_KILL_MS
 * (default 2000) change it, e.g.
 *   TRELLIS_PIPELINE_FAULT_MESSAGES=1000000 TRELLIS_PIPELINE_FAULT_KILL_MS=10000 \
 *     npx vitest run --project e2e test/e2e/pipeline --testTimeout 7200000
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { pipeProducer } from '../../../src/pipeline/index.js';
import { openMessageQueue } from '../../../src/stores/queue/index.js';
import { startTcpProxy } from '../../../src/stores/queue/testing/tcp-proxy.js';
import { serviceUrl } from '../../../src/testing/services.js';
import { type CliProcess, spawnCli, type TempDir, tempDir, waitUntil } from '../support/index.js';

const MESSAGES = Number(process.env.TRELLIS_PIPELINE_FAULT_MESSAGES ?? 400);
const KILL_MS = Number(process.env.TRELLIS_PIPELINE_FAULT_KILL_MS ?? 2000);
const KEYS = 50;
const POISON = 77;
const deadline = Math.max(60_000, MESSAGES * 20);

const brokers = {
  nats: await serviceUrl('nats'),
  redis: await serviceUrl('redis'),
};

const dirs: TempDir[] = [];
afterAll(() => {
  for (const d of dirs) d.cleanup();
});

/** Writes the three-stage pipeline file; s2 throws for n == POISON. */
function pipelineFile(dir: TempDir, name: string, queue: string, extra = '') {
  dir.write(
    'poison.mjs',
    `export default (v) => { if (v.n === ${POISON}) throw new Error('poison ${POISON}'); return { ...v, s2: true }; };\n`,
  );
  return dir.write(
    'pipeline.yaml',
    `name: ${name}
queue: ${queue}
state: sqlite:${dir.path}/state.db
stages:
  - name: s1
    input: { queue: { topic: ${name}.in } }
    concurrency: 32
    ackWait: 2s
    processors:
      - map: { jsonata: '$merge([$, {"s1": true}])' }
  - name: s2
    concurrency: 32
    ackWait: 2s
    processors:
      - map: { module: ./poison.mjs }
  - name: s3
    concurrency: 32
    ackWait: 2s
    processors:
      - map: { jsonata: '$merge([$, {"s3": true}])' }
${extra || `    output: { queue: { topic: ${name}.out } }`}
`,
  );
}

interface Seen {
  n: number;
  id: string;
}

/** Consumes a topic like a downstream service would, recording what arrived per key. */
async function watch(queueUrl: string, topic: string) {
  const queue = await openMessageQueue(queueUrl);
  const perKey = new Map<string, Seen[]>();
  let total = 0;
  const distinct = new Set<number>();
  const headers: Array<Record<string, string>> = [];
  const consumer = await queue.consume(
    topic,
    'watch',
    async (d) => {
      const v = JSON.parse(d.payload) as { n: number };
      const list = perKey.get(d.key ?? '') ?? [];
      list.push({ n: v.n, id: d.headers['trellis-id'] ?? d.id });
      perKey.set(d.key ?? '', list);
      headers.push(d.headers);
      distinct.add(v.n);
      total++;
    },
    { concurrency: 1 },
  );
  return {
    perKey,
    distinct,
    headers,
    total: () => total,
    close: async () => {
      await consumer.stop();
      await queue.close();
    },
  };
}

async function produce(queueUrl: string, topic: string, count: number) {
  const queue = await openMessageQueue(queueUrl);
  const producer = pipeProducer(queue, topic);
  const window: Promise<unknown>[] = [];
  for (let n = 0; n < count; n++) {
    window.push(producer.send({ n, pad: 'x'.repeat(64) }, { key: `k${n % KEYS}`, id: `m${n}` }));
    if (window.length >= 200) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
  await queue.close();
}

/** Asserts: nothing lost, no per-key reordering, duplicates carry the original idempotency key. */
function checkDelivery(perKey: Map<string, Seen[]>, expected: number[]) {
  const got = new Set<number>();
  let duplicates = 0;
  for (const [key, list] of perKey) {
    const firsts: number[] = [];
    const seen = new Map<number, string>();
    for (const s of list) {
      if (seen.has(s.n)) {
        duplicates++;
        expect(s.id, `duplicate of ${s.n} on ${key}`).toBe(seen.get(s.n));
        continue;
      }
      seen.set(s.n, s.id);
      expect(s.id).toBe(`m${s.n}`);
      firsts.push(s.n);
      got.add(s.n);
    }
    expect(firsts, `order of key ${key}`).toEqual([...firsts].sort((a, b) => a - b));
  }
  expect(expected.filter((n) => !got.has(n))).toEqual([]);
  return duplicates;
}

function stageProcs(file: string) {
  const procs: Record<string, CliProcess> = {};
  const start = async (name: string) => {
    const p = spawnCli(['pipeline', 'run', file, '--stage', name]);
    procs[name] = p;
    await p.waitForOutput(/pipeline started/, 30_000);
  };
  return { procs, start };
}

for (const [broker, base] of Object.entries(brokers)) {
  describe.skipIf(!base)(`pipeline faults on ${broker}`, () => {
    const prefix = `PF${randomBytes(3).toString('hex')}`;
    const queueUrl = `${base}?prefix=${prefix}`;

    it(`${MESSAGES} messages through three stage processes with one SIGKILLed every ${KILL_MS} ms: none lost, none reordered per key, the poison message in the DLQ`, async () => {
      const dir = tempDir();
      dirs.push(dir);
      const name = `ft${randomBytes(3).toString('hex')}`;
      const file = pipelineFile(dir, name, queueUrl);
      const { procs, start } = stageProcs(file);
      const out = await watch(queueUrl, `${name}.out`);
      const dlq = await watch(queueUrl, `${name}.s2.dlq`);
      await Promise.all(['s1', 's2', 's3'].map(start));
      let kills = 0;
      let stopKilling = false;
      const killer = (async () => {
        const names = ['s1', 's2', 's3'];
        while (!stopKilling) {
          await new Promise((r) => setTimeout(r, KILL_MS));
          if (stopKilling) break;
          const victim = names[kills % names.length]!;
          procs[victim]!.child.kill('SIGKILL');
          await procs[victim]!.exited;
          kills++;
          await start(victim);
        }
      })();
      try {
        await produce(queueUrl, `${name}.in`, MESSAGES);
        const expected = Array.from({ length: MESSAGES }, (_, n) => n).filter((n) => n !== POISON);
        await waitUntil(
          () => expected.every((n) => out.distinct.has(n)),
          'every message at the end',
          deadline,
        );
        stopKilling = true;
        await killer;
        await waitUntil(() => dlq.total() >= 1, 'the poison message in the DLQ', 30_000);
        const duplicates = checkDelivery(out.perKey, expected);
        expect(out.distinct.has(POISON)).toBe(false);
        const dead = dlq.headers[0]!;
        expect(dead['trellis-id']).toBe(`m${POISON}`);
        expect(dead['trellis-dead-letter-reason']).toBe(`poison ${POISON}`);
        expect(dead['trellis-dead-letter-stage']).toBe('s2');
        expect(Number(dead['trellis-deliveries'])).toBe(5);
        expect(kills).toBeGreaterThan(0);
        process.stderr.write(
          `pipeline faults ${broker}: ${MESSAGES} messages, ${kills} kills, ${duplicates} duplicates at the sink\n`,
        );
      } finally {
        stopKilling = true;
        await killer.catch(() => {});
        await Promise.all(Object.values(procs).map((p) => p.stop('SIGTERM', 5000)));
        await out.close();
        await dlq.close();
      }
    });

    it('every stage resumes by itself after the broker connection is cut mid-run', async () => {
      const dir = tempDir();
      dirs.push(dir);
      const server = new URL(base!);
      const proxy = await startTcpProxy(
        server.hostname,
        Number(server.port || (broker === 'nats' ? 4222 : 6379)),
      );
      const viaProxy = `${broker}://${proxy.address}${broker === 'redis' ? server.pathname : ''}?prefix=${prefix}`;
      const name = `fc${randomBytes(3).toString('hex')}`;
      const file = pipelineFile(dir, name, viaProxy);
      const { procs, start } = stageProcs(file);
      const out = await watch(queueUrl, `${name}.out`);
      try {
        await Promise.all(['s1', 's2', 's3'].map(start));
        const count = 300;
        const producing = produce(queueUrl, `${name}.in`, count);
        await waitUntil(() => out.total() > 50, 'the first messages through', 30_000);
        await proxy.cut();
        await new Promise((r) => setTimeout(r, 1500)); // the outage itself: this long, on purpose
        await proxy.restore();
        await producing;
        const expected = Array.from({ length: count }, (_, n) => n).filter((n) => n !== POISON);
        await waitUntil(
          () => expected.every((n) => out.distinct.has(n)),
          'every message after the outage',
          40_000,
        ).catch(async (err) => {
          const { runCli } = await import('../support/index.js');
          const st = await runCli(['pipeline', 'status', file, '--json']);
          process.stderr.write(`status: ${st.stdout}\n`);
          const missing = expected.filter((n) => !out.distinct.has(n));
          throw new Error(
            `${(err as Error).message}: ${missing.length} missing (${missing.slice(0, 10).join(', ')}…)\n${Object.entries(
              procs,
            )
              .map(([k, p]) => `--- ${k}\n${p.output().slice(-3000)}`)
              .join('\n')}`,
          );
        });
        checkDelivery(out.perKey, expected);
        for (const p of Object.values(procs)) expect(p.child.exitCode).toBe(null);
      } finally {
        await Promise.all(Object.values(procs).map((p) => p.stop('SIGTERM', 5000)));
        await out.close();
        await proxy.close();
      }
    });

    it('a slow sink holds the stage back instead of buffering: in-flight and memory stay bounded', async () => {
      const dir = tempDir();
      dirs.push(dir);
      const { startOrigin } = await import('../support/index.js');
      let received = 0;
      const origin = await startOrigin('slow', async (_req, res) => {
        await new Promise((r) => setTimeout(r, 20));
        received++;
        res.writeHead(200).end();
      });
      const name = `fs${randomBytes(3).toString('hex')}`;
      const file = pipelineFile(dir, name, queueUrl, `    output: { http: { url: '${origin.url}/sink' } }`);
      const { procs, start } = stageProcs(file);
      try {
        await Promise.all(['s1', 's2', 's3'].map(start));
        const count = 1000;
        await produce(queueUrl, `${name}.in`, count);
        const pid = procs.s3!.child.pid!;
        let maxRss = 0;
        const sample = () => {
          const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
          maxRss = Math.max(maxRss, kb * 1024);
        };
        // While the sink is the bottleneck, s3 holds at most its consumer's window.
        await waitUntil(
          () => {
            sample();
            return received >= 150;
          },
          'the slow sink to receive messages',
          90_000,
        );
        expect(received).toBeLessThan(count);
        expect(maxRss).toBeLessThan(300 * 1024 * 1024);
      } finally {
        await Promise.all(Object.values(procs).map((p) => p.stop('SIGKILL', 1000)));
        await origin.close();
      }
    });
  });
}
