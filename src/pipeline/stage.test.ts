import { afterEach, describe, expect, it } from 'vitest';
import { openKeyValueStore } from '../stores/kv/index.js';
import { until } from '../stores/kv/testing.js';
import { openMessageQueue } from '../stores/queue/index.js';
import type { KeyValueStore, MessageQueue } from '../stores/types.js';
import { filter, map } from './filters.js';
import { decodeDelivery, pipeProducer } from './pipe.js';
import { runStage, type Stage } from './stage.js';

let queue: MessageQueue;
let state: KeyValueStore;
const stages: Stage[] = [];

afterEach(async () => {
  for (const s of stages.splice(0)) await s.stop(1000);
  await queue?.close();
  await state?.close();
});

async function collect(topic: string) {
  const got: Array<{ key?: string; value: unknown; id: string; headers: Record<string, string> }> = [];
  const c = await queue.consume(topic, 'check', async (d) => {
    got.push({ ...decodeDelivery(d), headers: d.headers });
  });
  return { got, stop: () => c.stop() };
}

describe('runStage over a MessageQueue', () => {
  it('passes messages through two stages in order per key, and a poison message goes to the DLQ after maxDeliveries', async () => {
    queue = await openMessageQueue('memory:');
    state = await openKeyValueStore('memory:');
    let poisonTries = 0;
    stages.push(
      await runStage({
        name: 'double',
        queue,
        state,
        input: { topic: 'in' },
        filters: [
          map(
            (v: unknown) => {
              const n = (v as { n: number }).n;
              if (n === 13) {
                poisonTries++;
                throw new Error('thirteen is unlucky');
              }
              return { ...(v as object), n2: n * 2 };
            },
            { name: 'double-it' },
          ),
        ],
        output: { topic: 'mid' },
        maxDeliveries: 5,
        backoffMs: [1],
      }),
      await runStage({
        name: 'odd-drop',
        queue,
        state,
        input: { topic: 'mid' },
        filters: [filter((v: unknown) => (v as { n: number }).n % 5 !== 0)],
        output: { topic: 'out' },
      }),
    );
    const out = await collect('out');
    const dlq = await collect('in.dlq');
    const producer = pipeProducer(queue, 'in');
    for (let n = 0; n < 60; n++)
      await producer.send({ k: `k${n % 3}`, n }, { key: `k${n % 3}`, id: `m${n}` });
    await until(async () => out.got.length === 60 - 12 - 1 && dlq.got.length === 1, 15_000, 'all messages');
    expect(poisonTries).toBe(5);
    expect(dlq.got[0]!.headers['trellis-dead-letter-reason']).toBe('thirteen is unlucky');
    expect(dlq.got[0]!.headers['trellis-dead-letter-filter']).toBe('double-it');
    expect(dlq.got[0]!.id).toBe('m13');
    for (const k of ['k0', 'k1', 'k2']) {
      const ns = out.got.filter((m) => m.key === k).map((m) => (m.value as { n: number }).n);
      expect(ns).toEqual([...ns].sort((a, b) => a - b));
    }
    expect(out.got.every((m) => m.headers['trellis-seq'] !== undefined)).toBe(true);
    await out.stop();
    await dlq.stop();
  });
});

describe('runStage with redeliveries of messages still in flight', () => {
  it('a copy redelivered while its original runs settles with it: each input runs once and the next pipe keeps an unbroken chain', async () => {
    queue = await openMessageQueue('memory:');
    state = await openKeyValueStore('memory:');
    const runs = new Map<number, number>();
    stages.push(
      await runStage({
        name: 'slow',
        queue,
        state,
        input: { topic: 'in' },
        filters: [
          map(
            async (v: unknown) => {
              const n = (v as { n: number }).n;
              runs.set(n, (runs.get(n) ?? 0) + 1);
              // Longer than ackWait: the queue hands the message out again while it runs.
              if (n % 4 === 0) await new Promise((r) => setTimeout(r, 500));
              return v;
            },
            { name: 'slow-work' },
          ),
        ],
        output: { topic: 'out' },
        ackWaitMs: 150,
      }),
    );
    const out = await collect('out');
    const producer = pipeProducer(queue, 'in');
    for (let n = 0; n < 16; n++) await producer.send({ n }, { key: `k${n % 2}`, id: `m${n}` });
    await until(async () => new Set(out.got.map((m) => m.id)).size === 16, 15_000, 'all messages');
    expect(
      [...runs.values()].every((r) => r === 1),
      JSON.stringify([...runs]),
    ).toBe(true);
    for (const k of ['k0', 'k1']) {
      const chain = out.got.filter((m) => m.key === k);
      for (let i = 1; i < chain.length; i++) {
        expect(chain[i]!.headers['trellis-prev'], `${k} #${i}`).toBe(chain[i - 1]!.headers['trellis-seq']);
      }
    }
    await out.stop();
  });
});
