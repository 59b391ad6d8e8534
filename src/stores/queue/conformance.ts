/**
 * The MessageQueue conformance suite: one function every backend's test file calls with its
 * factory. What a backend cannot do comes from its feature list (with the reason in the test
 * name), never from a quiet skip inside a test.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isTrellisError } from '../../core/errors.js';
import type { ConsumeOptions, Consumer, Delivery, MessageQueue, QueueFeature } from '../types.js';
import { openMessageQueue } from './index.js';

/** A real server outage for one client: the queue is opened through `url` (a proxy the test cuts). */
export interface QueueOutage {
  url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export interface QueueConformanceTarget {
  name: string;
  /** The URL to open; called per test (a fresh file for SQLite, the shared server otherwise). */
  url(): string | Promise<string>;
  /** For server backends: open the queue through a connection the test can cut and restore. */
  outage?: () => Promise<QueueOutage>;
  /** Removes what the suite left on the server (keys, streams) after the last test. */
  cleanup?: () => Promise<void>;
}

const childScript = fileURLToPath(new URL('./testing/consume-child.ts', import.meta.url));

/** Polls `check` until it is true or the deadline passes (no fixed sleeps). */
export async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const fast: ConsumeOptions = { ackWaitMs: 400, backoffMs: [30], maxDeliver: 5 };

export function messageQueueConformance(target: QueueConformanceTarget): void {
  describe(`MessageQueue conformance: ${target.name}`, () => {
    const open: MessageQueue[] = [];
    const consumers: Consumer[] = [];
    const topic = (label: string) => `cf-${label}-${randomBytes(4).toString('hex')}`;
    const openQueue = async (url?: string) => {
      const q = await openMessageQueue(url ?? (await target.url()));
      open.push(q);
      return q;
    };
    const consume = async (
      q: MessageQueue,
      t: string,
      group: string,
      handler: (d: Delivery) => Promise<void>,
      options: ConsumeOptions = fast,
    ) => {
      const c = await q.consume(t, group, handler, options);
      consumers.push(c);
      return c;
    };
    afterAll(async () => {
      await Promise.all(consumers.map((c) => c.stop()));
      await Promise.all(open.map((q) => q.close()));
      await target.cleanup?.();
    });

    let features: { supports: ReadonlySet<QueueFeature>; lacks: Partial<Record<QueueFeature, string>> };
    const lacking = (f: QueueFeature) => {
      const reason = features?.lacks[f];
      return reason ? ` (not applicable: ${reason})` : '';
    };

    it('opens, reports health and declares its features', async () => {
      const q = await openQueue();
      features = q.features;
      expect(await q.health()).toMatchObject({ ok: true, backend: q.backend });
      for (const f of ['durable', 'multiProcess', 'dedupe', 'delayedNack'] as const) {
        // Every feature is either supported or lacking with a reason, never silently absent.
        expect(q.features.supports.has(f) || Boolean(q.features.lacks[f])).toBe(true);
      }
    });

    it('delivers payload, key, headers and ids as published', async () => {
      const q = await openQueue();
      const t = topic('basic');
      const sent = [];
      for (let i = 0; i < 3; i++) {
        sent.push(
          await q.publish(t, `payload-${i} ünïcode`, { key: `k${i}`, headers: { 'x-n': String(i) } }),
        );
      }
      expect(sent.every((s) => !s.duplicate && s.id.length > 0)).toBe(true);
      const got: Delivery[] = [];
      await consume(q, t, 'g1', async (d) => {
        got.push(d);
      });
      await waitFor(() => got.length >= 3, '3 deliveries');
      const byId = new Map(got.map((d) => [d.id, d]));
      sent.forEach((s, i) => {
        expect(byId.get(s.id)).toMatchObject({
          topic: t,
          payload: `payload-${i} ünïcode`,
          key: `k${i}`,
          headers: { 'x-n': String(i) },
          deliveryCount: 1,
        });
      });
    });

    it('consumers in one group share the work; every group gets every message', async () => {
      const q = await openQueue();
      const t = topic('groups');
      const a1: string[] = [];
      const a2: string[] = [];
      const b: string[] = [];
      const slow = (into: string[]) => async (d: Delivery) => {
        into.push(d.payload);
        await new Promise((r) => setTimeout(r, 5)); // work time, so the two consumers interleave
      };
      await consume(q, t, 'a', slow(a1));
      await consume(q, t, 'a', slow(a2));
      await consume(q, t, 'b', slow(b));
      const n = 40;
      for (let i = 0; i < n; i++) await q.publish(t, `m${i}`);
      await waitFor(() => a1.length + a2.length >= n && b.length >= n, 'both groups to finish');
      const groupA = [...a1, ...a2].sort();
      expect(new Set(groupA).size).toBe(n);
      expect(new Set(b).size).toBe(n);
      expect(a1.length).toBeGreaterThan(0);
      expect(a2.length).toBeGreaterThan(0);
    });

    it('keeps publish order for one consumer with concurrency 1 (ordering per key)', async () => {
      const q = await openQueue();
      const t = topic('order');
      const got: string[] = [];
      for (let i = 0; i < 30; i++) await q.publish(t, String(i), { key: 'one-key' });
      await consume(
        q,
        t,
        'g',
        async (d) => {
          got.push(d.payload);
        },
        { ...fast, concurrency: 1 },
      );
      await waitFor(() => got.length >= 30, '30 deliveries');
      expect(got).toEqual(Array.from({ length: 30 }, (_, i) => String(i)));
    });

    it('runs at most `concurrency` handlers at once, and does reach it', async () => {
      const q = await openQueue();
      const t = topic('conc');
      let running = 0;
      let peak = 0;
      let done = 0;
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      await consume(
        q,
        t,
        'g',
        async () => {
          running++;
          peak = Math.max(peak, running);
          await gate;
          running--;
          done++;
        },
        { ...fast, concurrency: 4, ackWaitMs: 10_000 },
      );
      for (let i = 0; i < 10; i++) await q.publish(t, String(i));
      await waitFor(() => running === 4, '4 handlers running');
      release();
      await waitFor(() => done === 10, 'all 10 handled');
      expect(peak).toBe(4);
    });

    it('nack with a delay redelivers after that delay with a higher delivery count', async () => {
      const q = await openQueue();
      const t = topic('nack');
      const seen: { count: number; at: number }[] = [];
      await consume(q, t, 'g', async (d) => {
        seen.push({ count: d.deliveryCount, at: Date.now() });
        if (d.deliveryCount === 1) await d.nack({ delayMs: 300 });
      });
      await q.publish(t, 'again');
      await waitFor(() => seen.length >= 2, 'a redelivery');
      expect(seen.map((s) => s.count)).toEqual([1, 2]);
      expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(280);
    });

    it('a thrown handler is retried with backoff; a poison message ends in the dead-letter topic after maxDeliver', async () => {
      const q = await openQueue();
      const t = topic('poison');
      const attempts: number[] = [];
      await consume(
        q,
        t,
        'g',
        async (d) => {
          attempts.push(d.deliveryCount);
          throw new Error(`cannot parse ${d.payload}`);
        },
        { ...fast, maxDeliver: 3, backoffMs: [20, 40] },
      );
      const dead: Delivery[] = [];
      await consume(q, `${t}.dlq`, 'ops', async (d) => {
        dead.push(d);
      });
      const { id } = await q.publish(t, 'poison!', { key: 'pk', headers: { 'x-trace': 'abc' } });
      await waitFor(() => dead.length >= 1, 'the dead-lettered message');
      expect(attempts).toEqual([1, 2, 3]);
      expect(dead[0]).toMatchObject({ payload: 'poison!', key: 'pk' });
      expect(dead[0]!.headers).toMatchObject({
        'x-trace': 'abc',
        'trellis-original-topic': t,
        'trellis-original-id': id,
        'trellis-group': 'g',
        'trellis-deliveries': '3',
      });
      expect(dead[0]!.headers['trellis-dead-letter-reason']).toContain('cannot parse poison!');
    });

    it('term sends a message straight to the dead-letter topic with the reason', async () => {
      const q = await openQueue();
      const t = topic('term');
      let calls = 0;
      await consume(
        q,
        t,
        'g',
        async (d) => {
          calls++;
          await d.term('schema v1 is no longer accepted');
        },
        { ...fast, deadLetterTopic: `${t}.rejects` },
      );
      const dead: Delivery[] = [];
      await consume(q, `${t}.rejects`, 'ops', async (d) => {
        dead.push(d);
      });
      await q.publish(t, 'old');
      await waitFor(() => dead.length >= 1, 'the terminated message');
      expect(dead[0]!.headers['trellis-dead-letter-reason']).toBe('schema v1 is no longer accepted');
      expect(calls).toBe(1);
    });

    it('a hung consumer loses the message after ackWait to another consumer of its group', async () => {
      const q = await openQueue();
      const t = topic('ackwait');
      let hung = 0;
      let release!: () => void;
      const stuck = new Promise<void>((r) => {
        release = r;
      });
      const hungConsumer = await q.consume(
        t,
        'g',
        async () => {
          hung++;
          await stuck;
        },
        fast,
      );
      await q.publish(t, 'work');
      await waitFor(() => hung === 1, 'the first delivery');
      const got: Delivery[] = [];
      await consume(q, t, 'g', async (d) => {
        got.push(d);
      });
      await waitFor(() => got.length >= 1, 'the redelivery', 5000);
      expect(got[0]).toMatchObject({ payload: 'work', deliveryCount: 2 });
      release();
      await hungConsumer.stop();
    });

    it('stop() lets running handlers finish and settles them', async () => {
      const q = await openQueue();
      const t = topic('stop');
      let finished = false;
      let started = false;
      const c = await q.consume(
        t,
        'g',
        async () => {
          started = true;
          await new Promise((r) => setTimeout(r, 100)); // the handler's own work
          finished = true;
        },
        { ...fast, ackWaitMs: 300 },
      );
      await q.publish(t, 'in-flight');
      await waitFor(() => started, 'the handler to start');
      await c.stop();
      expect(finished).toBe(true);
      // It was acked: a new consumer of the group sees only what comes next, even after ackWait.
      const got: string[] = [];
      await consume(q, t, 'g', async (d) => {
        got.push(d.payload);
      });
      await new Promise((r) => setTimeout(r, 400)); // let ackWait pass: a redelivery would show now
      await q.publish(t, 'next');
      await waitFor(() => got.includes('next'), 'the next message');
      expect(got).toEqual(['next']);
    });

    it('loses nothing published while consumers restart', async () => {
      const url = await target.url();
      let q = await openQueue(url);
      const t = topic('restart');
      const total = 60;
      const got = new Set<string>();
      let c = await q.consume(
        t,
        'g',
        async (d) => {
          got.add(d.payload);
        },
        { ...fast, concurrency: 3 },
      );
      let published = 0;
      const publishSome = async (n: number) => {
        for (let i = 0; i < n; i++) await q.publish(t, `m${published++}`);
      };
      await publishSome(20);
      await waitFor(() => got.size >= 5, 'some deliveries');
      await c.stop();
      await publishSome(20); // nobody is consuming now
      if (features.supports.has('durable')) {
        // A durable backend also keeps them across a full close and reopen of the queue.
        await q.close();
        q = await openQueue(url);
      }
      c = await q.consume(
        t,
        'g',
        async (d) => {
          got.add(d.payload);
        },
        { ...fast, concurrency: 3 },
      );
      await publishSome(total - published);
      await waitFor(() => got.size >= total, `all ${total} messages`);
      expect(got.size).toBe(total);
      await c.stop();
    });

    it('delivers a publish repeated with the same id inside the window once', async () => {
      const q = await openQueue();
      const t = topic('dedupe');
      const first = await q.publish(t, 'charge card', { id: 'order-42' });
      const again = await q.publish(t, 'charge card', { id: 'order-42' });
      expect(first).toEqual({ id: 'order-42', duplicate: false });
      expect(again).toEqual({ id: 'order-42', duplicate: true });
      // The same id on another topic is another message.
      expect((await q.publish(`${t}.other`, 'x', { id: 'order-42' })).duplicate).toBe(false);
      await q.publish(t, 'sentinel');
      const got: Delivery[] = [];
      await consume(
        q,
        t,
        'g',
        async (d) => {
          got.push(d);
        },
        { ...fast, concurrency: 1 },
      );
      await waitFor(() => got.some((d) => d.payload === 'sentinel'), 'the sentinel');
      expect(got.map((d) => d.payload)).toEqual(['charge card', 'sentinel']);
      expect(got[0]!.id).toBe('order-42');
    });

    it('forgets a dedupe id once its window has passed', async () => {
      const q = await openMessageQueue(await target.url(), { dedupeWindowMs: 300 });
      open.push(q);
      const t = topic('window');
      const start = Date.now();
      expect((await q.publish(t, 'a', { id: 'once' })).duplicate).toBe(false);
      expect((await q.publish(t, 'a', { id: 'once' })).duplicate).toBe(true);
      let again = true;
      while (again && Date.now() - start < 5000) {
        again = (await q.publish(t, 'a', { id: 'once' })).duplicate;
        if (again) await new Promise((r) => setTimeout(r, 20));
      }
      expect(again).toBe(false);
      expect(Date.now() - start).toBeGreaterThanOrEqual(250);
    });

    it('keeps what is published before any group consumes, for the first group that does', async () => {
      const q = await openQueue();
      const t = topic('early');
      for (let i = 0; i < 5; i++) await q.publish(t, `early-${i}`);
      const got: string[] = [];
      await consume(q, t, 'first', async (d) => {
        got.push(d.payload);
      });
      await waitFor(() => got.length >= 5, 'the early messages');
      expect(got).toEqual(['early-0', 'early-1', 'early-2', 'early-3', 'early-4']);
    });

    it('rejects bad input with a code and a message that says what to fix', async () => {
      const q = await openQueue();
      const code = async (p: Promise<unknown>) => {
        try {
          await p;
          return 'no error';
        } catch (err) {
          return isTrellisError(err) ? err.code : `raw: ${String(err)}`;
        }
      };
      expect(await code(q.publish('bad topic!', 'x'))).toBe('TRELLIS_E_QUEUE_NAME_INVALID');
      expect(await code(q.publish('t..x', 'x'))).toBe('TRELLIS_E_QUEUE_NAME_INVALID');
      expect(await code(q.publish(topic('big'), 'x'.repeat(1024 * 1024 + 1)))).toBe(
        'TRELLIS_E_QUEUE_PAYLOAD_TOO_LARGE',
      );
      expect(await code(q.consume(topic('c'), 'has.dot', async () => {}))).toBe(
        'TRELLIS_E_QUEUE_NAME_INVALID',
      );
      expect(await code(q.consume(topic('c'), 'g', async () => {}, { concurrency: 0 }))).toBe(
        'TRELLIS_E_QUEUE_OPTIONS_INVALID',
      );
      expect(await code(q.consume(topic('c'), 'g', async () => {}, { backoffMs: [] }))).toBe(
        'TRELLIS_E_QUEUE_OPTIONS_INVALID',
      );
    });

    it('refuses work after close()', async () => {
      const q = await openQueue();
      await q.close();
      await expect(q.publish(topic('closed'), 'x')).rejects.toMatchObject({ code: 'TRELLIS_E_STORE_CLOSED' });
      expect((await q.health()).ok).toBe(false);
    });

    it('redelivers the message of a consumer process killed mid-message (SIGKILL)', async (ctx) => {
      if (!features.supports.has('multiProcess')) {
        ctx.skip(`not applicable${lacking('multiProcess')}`);
        return;
      }
      const url = await target.url();
      const q = await openQueue(url);
      const t = topic('kill');
      const child = spawn(process.execPath, ['--import', 'tsx', childScript, url, t, 'g', '400'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      try {
        let out = '';
        let err = '';
        let exited: number | null | undefined;
        child.stdout.on('data', (b: Buffer) => {
          out += b.toString();
        });
        child.stderr.on('data', (b: Buffer) => {
          err += b.toString();
        });
        child.once('exit', (code) => {
          exited = code;
        });
        // A child that dies before it is ready fails the test at once, with what it printed.
        const started = () => {
          if (exited !== undefined)
            throw new Error(`the child consumer exited (${exited}) before it was ready:\n${err}`);
          return out.includes('ready');
        };
        // Starting node with tsx on a loaded CI machine can take seconds: the budget is wide.
        await waitFor(started, 'the child consumer to start', 40_000);
        const { id } = await q.publish(t, 'half-done');
        await waitFor(() => out.includes(`got ${id} 1`), 'the child to take the message');
        child.kill('SIGKILL');
        if (exited === undefined) await new Promise((r) => child.once('exit', r));
        const got: Delivery[] = [];
        await consume(q, t, 'g', async (d) => {
          got.push(d);
        });
        await waitFor(() => got.length >= 1, 'the redelivery');
        expect(got[0]).toMatchObject({ id, payload: 'half-done', deliveryCount: 2 });
      } finally {
        child.kill('SIGKILL');
      }
    }, 60_000);

    it('a server that goes away gives TRELLIS_E_STORE_UNAVAILABLE and recovers without a restart', async (ctx) => {
      if (!target.outage) {
        ctx.skip('not applicable: the backend runs in this process, there is no server to lose');
        return;
      }
      const outage = await target.outage();
      try {
        const q = await openQueue(outage.url);
        const t = topic('outage');
        const got = new Set<string>();
        await consume(q, t, 'g', async (d) => {
          got.add(d.payload);
        });
        await q.publish(t, 'before');
        await waitFor(() => got.has('before'), 'the first message');
        await outage.cut();
        const failed = await q.publish(t, 'during').then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(failed).toMatchObject({ code: 'TRELLIS_E_STORE_UNAVAILABLE' });
        expect(String((failed as Error).message)).toMatch(/(is|was) .* running|unavailable|connection/i);
        expect((await q.health()).ok).toBe(false);
        await outage.restore();
        // The same queue object recovers: publishes succeed again and the consumer resumes.
        let after: unknown;
        const deadline = Date.now() + 15_000;
        while (Date.now() < deadline) {
          after = await q.publish(t, 'after').then(
            () => 'ok',
            (err: unknown) => err,
          );
          if (after === 'ok') break;
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(after).toBe('ok');
        await waitFor(() => got.has('after'), 'the consumer to resume', 15_000);
        expect((await q.health()).ok).toBe(true);
      } finally {
        await outage.close();
      }
    });
  });
}
