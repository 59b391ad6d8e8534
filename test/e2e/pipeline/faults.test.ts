/**
 * Fault tests for pipelines across processes, on real NATS JetStream and Redis Streams: three
 * stage processes (`trellis pipeline run FILE --stage NAME`), one SIGKILLed and restarted
 * periodically, a poison message, a broker connection cut, a slow sink.
 *
 * The issue's full run is 1,000,000 messages with a kill every 10 s; `npm test` runs a smaller
 * one. TRELLIS_PIPELINE_FAULT_MESSAGES (default 400) and TRELLIS_PIPELINE_FAULT_KILL_MS
 * (default 2000) change it; `npm run soak -- pipeline --messages 1000000 --backend nats` runs
 * the kill test alone with them (scripts/soak.mjs). Arrivals are checked as they come (a bitmap
 * and a cursor per key), so a million messages cost the watcher about a megabyte.
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
/** Ordering keys (TRELLIS_PIPELINE_FAULT_KEYS, default 50): a key's messages go one at a time. */
const KEYS = Number(process.env.TRELLIS_PIPELINE_FAULT_KEYS ?? 50);
const POISON = 77;
const deadline = Math.max(60_000, MESSAGES * 20);
/** A run gives up (and reports what is missing) when nothing new arrived for this long. */
const STALL_MS = Math.max(60_000, KILL_MS * 6);

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

/**
 * What reached a topic, checked as it arrives so a million-message run keeps a few bytes per
 * message: which n arrived (a bitmap), the last first-arrival per key (order), and the copies.
 */
class Arrivals {
  readonly seen: Uint8Array;
  /** Distinct n that arrived. */
  distinct = 0;
  total = 0;
  duplicates = 0;
  /** Copies whose idempotency key is not the original's. */
  badIds: string[] = [];
  /** First arrivals that came before an earlier n of the same key. */
  reordered: string[] = [];
  /** The first messages' headers (the dead-letter checks read them). */
  readonly headers: Array<Record<string, string>> = [];
  private readonly lastFirst = new Map<string, number>();

  constructor(readonly size: number) {
    this.seen = new Uint8Array(size);
  }

  record(key: string, n: number, id: string, headers: Record<string, string>) {
    this.total++;
    if (this.headers.length < 10) this.headers.push(headers);
    if (id !== `m${n}`) this.badIds.push(`${n} on ${key} arrived as ${id}`);
    if (n < 0 || n >= this.size) return;
    if (this.seen[n]) {
      this.duplicates++;
      return;
    }
    this.seen[n] = 1;
    this.distinct++;
    const last = this.lastFirst.get(key) ?? -1;
    if (n < last) this.reordered.push(`${n} after ${last} on ${key}`);
    else this.lastFirst.set(key, n);
  }

  has(n: number) {
    return this.seen[n] === 1;
  }

  /** The expected n that have not arrived. */
  missing(expected: (n: number) => boolean): number[] {
    const out: number[] = [];
    for (let n = 0; n < this.size; n++) if (expected(n) && !this.seen[n]) out.push(n);
    return out;
  }
}

/** Consumes a topic like a downstream service would, recording what arrived per key. */
async function watch(queueUrl: string, topic: string, size: number) {
  const queue = await openMessageQueue(queueUrl);
  const arrivals = new Arrivals(size);
  const consumer = await queue.consume(
    topic,
    'watch',
    async (d) => {
      const v = JSON.parse(d.payload) as { n: number };
      arrivals.record(d.key ?? '', v.n, d.headers['trellis-id'] ?? d.id, d.headers);
    },
    // The handler records synchronously as the consumer hands messages over, in the topic's
    // order, so a wide window does not blur the order check; a window of 1 would make the
    // watcher (one broker round trip per message) the slowest part of a long run.
    { concurrency: 256 },
  );
  return {
    arrivals,
    total: () => arrivals.total,
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
function checkDelivery(a: Arrivals, expected: (n: number) => boolean) {
  expect(a.badIds.slice(0, 10)).toEqual([]);
  expect(a.reordered.slice(0, 10), 'order per key').toEqual([]);
  expect(a.missing(expected).slice(0, 20), 'lost').toEqual([]);
  return a.duplicates;
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
      const out = await watch(queueUrl, `${name}.out`, MESSAGES);
      const dlq = await watch(queueUrl, `${name}.s2.dlq`, MESSAGES);
      await Promise.all(['s1', 's2', 's3'].map(start));
      const t0 = Date.now();
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
      const progress = MESSAGES >= 10_000 ? setInterval(() => report('progress'), 30_000) : undefined;
      const expected = (n: number) => n !== POISON;
      const expectedCount = MESSAGES > POISON ? MESSAGES - 1 : MESSAGES;
      // The figures the soak run records (`npm run soak -- pipeline`), printed before any assertion.
      let tEnd: number | undefined;
      const report = (what: string) => {
        const s = ((tEnd ?? Date.now()) - t0) / 1000;
        const lost =
          what === 'progress' ? expectedCount - out.arrivals.distinct : out.arrivals.missing(expected).length;
        process.stderr.write(
          `pipeline faults ${broker} ${what}: ${MESSAGES} messages, ${kills} kills (every ${KILL_MS} ms), ` +
            `${what === 'progress' ? 'not yet arrived' : 'lost'} ${lost}, reordered ${out.arrivals.reordered.length}, ` +
            `duplicates ${out.arrivals.duplicates}, wrong ids ${out.arrivals.badIds.length}, dead letters ${dlq.total()}, ` +
            `${s.toFixed(0)} s, ${(out.arrivals.distinct / s).toFixed(0)} msg/s\n`,
        );
      };
      try {
        await produce(queueUrl, `${name}.in`, MESSAGES);
        // Done when every message arrived; given up when nothing new arrived for STALL_MS.
        let last = -1;
        let lastMove = Date.now();
        await waitUntil(
          () => {
            if (out.arrivals.distinct !== last) {
              last = out.arrivals.distinct;
              lastMove = Date.now();
            }
            return out.arrivals.distinct >= expectedCount || Date.now() - lastMove > STALL_MS;
          },
          'every message at the end',
          deadline,
        );
        // The rate counts until the last arrival (or the stall), not the killer's last pause.
        tEnd = out.arrivals.distinct >= expectedCount ? Date.now() : lastMove;
        stopKilling = true;
        await killer;
        await waitUntil(() => dlq.total() >= 1, 'the poison message in the DLQ', 30_000).catch(() => {});
        report('result');
        checkDelivery(out.arrivals, expected);
        expect(out.arrivals.has(POISON)).toBe(false);
        const dead = dlq.arrivals.headers[0]!;
        expect(dead, 'the poison message in the DLQ').toBeDefined();
        expect(dead['trellis-id']).toBe(`m${POISON}`);
        expect(dead['trellis-dead-letter-reason']).toBe(`poison ${POISON}`);
        expect(dead['trellis-dead-letter-stage']).toBe('s2');
        expect(Number(dead['trellis-deliveries'])).toBe(5);
        expect(kills).toBeGreaterThan(0);
      } finally {
        clearInterval(progress);
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
      const count = 300;
      const out = await watch(queueUrl, `${name}.out`, count);
      try {
        await Promise.all(['s1', 's2', 's3'].map(start));
        const producing = produce(queueUrl, `${name}.in`, count);
        await waitUntil(() => out.total() > 50, 'the first messages through', 30_000);
        await proxy.cut();
        await new Promise((r) => setTimeout(r, 1500)); // the outage itself: this long, on purpose
        await proxy.restore();
        await producing;
        const expected = (n: number) => n !== POISON;
        await waitUntil(
          () => out.arrivals.missing(expected).length === 0,
          'every message after the outage',
          40_000,
        ).catch(async (err) => {
          const { runCli } = await import('../support/index.js');
          const st = await runCli(['pipeline', 'status', file, '--json']);
          process.stderr.write(`status: ${st.stdout}\n`);
          const missing = out.arrivals.missing(expected);
          throw new Error(
            `${(err as Error).message}: ${missing.length} missing (${missing.slice(0, 10).join(', ')}…)\n${Object.entries(
              procs,
            )
              .map(([k, p]) => `--- ${k}\n${p.output().slice(-3000)}`)
              .join('\n')}`,
          );
        });
        checkDelivery(out.arrivals, expected);
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
