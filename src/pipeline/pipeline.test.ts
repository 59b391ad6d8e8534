import { describe, expect, it } from 'vitest';
import { openKeyValueStore } from '../stores/kv/index.js';
import type { DeadLetter } from './engine.js';
import { batch, dedupe, filter, flatMap, map, window } from './filters.js';
import type { Message } from './message.js';
import { pipeline, route } from './pipeline.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('pipeline', () => {
  it('runs map, filter and batch in order and reports counts', async () => {
    const out: number[][] = [];
    const r = await pipeline(
      Array.from({ length: 1000 }, (_, i) => i),
      map((n: number) => n * 2),
      filter((n: number) => n % 3 === 0),
      batch<number>({ size: 100 }),
      (b: number[]) => {
        out.push(b);
      },
    );
    const flat = out.flat();
    expect(flat).toEqual(Array.from({ length: 1000 }, (_, i) => i * 2).filter((n) => n % 3 === 0));
    expect(out.slice(0, -1).every((b) => b.length === 100)).toBe(true);
    expect(r).toMatchObject({ in: 1000, out: out.length, deadLettered: 0 });
  });

  it('keeps order per key with concurrency and runs different keys side by side', async () => {
    let running = 0;
    let most = 0;
    const seen = new Map<string, number[]>();
    const msgs: Message<number>[] = Array.from({ length: 200 }, (_, i) => ({
      value: i,
      key: `k${i % 5}`,
      id: `m${i}`,
      headers: {},
    }));
    await pipeline(
      msgs,
      map(
        async (n: number) => {
          running++;
          most = Math.max(most, running);
          await tick(n % 7);
          running--;
          return n;
        },
        { concurrency: 8 },
      ),
      (n: number, m) => {
        seen.set(m.key!, [...(seen.get(m.key!) ?? []), n]);
      },
      { messages: true },
    );
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(5); // five keys: at most one message per key at a time
    for (const [, list] of seen) expect(list).toEqual([...list].sort((a, b) => a - b));
    expect([...seen.values()].flat()).toHaveLength(200);
  });

  it('sends a failing message to the dead-letter sink with the error and filter name, and keeps going', async () => {
    const dead: DeadLetter[] = [];
    const good: number[] = [];
    let tries = 0;
    const r = await pipeline(
      [1, 2, 3, 4],
      map(
        (n: number) => {
          if (n === 3) {
            tries++;
            throw new Error('three is poison');
          }
          return n;
        },
        { name: 'parse', retry: { attempts: 3, backoffMs: [1] } },
      ),
      (n: number) => {
        good.push(n);
      },
      { deadLetter: (d: DeadLetter) => void dead.push(d) },
    );
    expect(good).toEqual([1, 2, 4]);
    expect(tries).toBe(3);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ filter: 'parse', attempts: 3, error: { message: 'three is poison' } });
    expect(dead[0]!.message.value).toBe(3);
    expect(r.deadLettered).toBe(1);
  });

  it('without a dead-letter sink the first failure rejects with TRELLIS_E_PIPELINE_FILTER_FAILED', async () => {
    await expect(
      pipeline(
        [1, 2],
        map((): number => {
          throw new Error('boom');
        }),
        () => {},
      ),
    ).rejects.toMatchObject({ code: 'TRELLIS_E_PIPELINE_FILTER_FAILED' });
  });

  it('stops on abort with TRELLIS_E_PIPELINE_ABORTED', async () => {
    const abort = new AbortController();
    async function* forever() {
      for (let i = 0; ; i++) {
        yield i;
        await tick(1);
      }
    }
    let n = 0;
    const run = pipeline(
      forever(),
      map((x: number) => x),
      () => {
        if (++n === 10) abort.abort();
      },
      { signal: abort.signal },
    );
    await expect(run).rejects.toMatchObject({ code: 'TRELLIS_E_PIPELINE_ABORTED' });
  });

  it('applies backpressure: a slow sink keeps the source from running ahead', async () => {
    let produced = 0;
    let written = 0;
    let furthestAhead = 0;
    async function* source() {
      for (let i = 0; i < 300; i++) {
        produced++;
        furthestAhead = Math.max(furthestAhead, produced - written);
        yield i;
      }
    }
    await pipeline(
      source(),
      map(async (x: number) => x, { concurrency: 4 }),
      async () => {
        await tick(1);
        written++;
      },
    );
    expect(written).toBe(300);
    expect(furthestAhead).toBeLessThan(40);
  });

  it('a sink with writesInFlight has that many writes outstanding, started in order, and no more', async () => {
    let writing = 0;
    let most = 0;
    const started: number[] = [];
    const done: number[] = [];
    // A source that yields one message per chunk, like a stage's input does under load.
    async function* source() {
      for (let i = 0; i < 200; i++) {
        yield i;
        await tick(0);
      }
    }
    const r = await pipeline(
      source(),
      map((x: number) => x),
      {
        name: 'slow-confirm',
        writesInFlight: 8,
        async write(chunk) {
          writing++;
          most = Math.max(most, writing);
          for (const m of chunk) started.push(m.value as number);
          // Confirmations come back out of order, as a broker's may.
          await tick(1 + ((chunk[0]!.value as number) % 3));
          for (const m of chunk) done.push(m.value as number);
          writing--;
        },
      },
    );
    expect(r.out).toBe(200);
    expect(started).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(done.sort((a, b) => a - b)).toEqual(started);
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(8);
  });

  it('a sink with writesInFlight keeps order per key when a write fails and is retried', async () => {
    const landed: { key: string; n: number }[] = [];
    let failedOnce = false;
    async function* source() {
      for (let i = 0; i < 60; i++) {
        yield { value: i, key: `k${i % 3}`, id: `m${i}`, headers: {} } satisfies Message<number>;
        await tick(0);
      }
    }
    const r = await pipeline(
      source(),
      map((x: number) => x),
      {
        name: 'flaky-broker',
        writesInFlight: 8,
        async write(chunk) {
          // The broker refuses message 4 once, after a while: its retry comes after later writes.
          if (!failedOnce && chunk.some((m) => m.value === 4)) {
            failedOnce = true;
            await tick(5);
            throw new Error('broker went away');
          }
          await tick(1);
          for (const m of chunk) landed.push({ key: m.key!, n: m.value as number });
        },
      },
      { messages: true, sinkRetry: { attempts: 3, backoffMs: [10] } },
    );
    expect(failedOnce).toBe(true);
    expect(r.out).toBe(60);
    for (const key of ['k0', 'k1', 'k2']) {
      const order = landed.filter((l) => l.key === key).map((l) => l.n);
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
  });

  it('batches by time when the count is not reached', async () => {
    async function* slow() {
      yield 1;
      yield 2;
      await tick(300);
      yield 3;
    }
    const batches: number[][] = [];
    await pipeline(slow(), batch<number>({ size: 10, maxWaitMs: 50 }), (b: number[]) => void batches.push(b));
    expect(batches).toEqual([[1, 2], [3]]);
  });

  it('flatMap, window per key, route and dedupe with a KeyValueStore', async () => {
    const store = await openKeyValueStore('memory:');
    const evens: number[] = [];
    const odds: number[] = [];
    await pipeline(
      [1, 2, 2, 3],
      dedupe<number>({ store, by: (n) => String(n) }),
      flatMap((n: number) => [n, n * 10]),
      route<number>([{ when: (n) => n % 2 === 0, to: (n) => void evens.push(n) }], (n) => void odds.push(n)),
    );
    expect(evens).toEqual([10, 2, 20, 30]);
    expect(odds).toEqual([1, 3]);
    await store.close();

    const windows: Array<{ key: string | undefined; sum: number }> = [];
    const msgs = [1, 2, 3, 4].map((v) => ({
      value: v,
      key: v % 2 ? 'odd' : 'even',
      id: `w${v}`,
      headers: {},
    }));
    await pipeline(
      msgs,
      window<number, { key: string | undefined; sum: number }>({
        durationMs: 10_000,
        reduce: (vs, key) => ({ key, sum: vs.reduce((a, b) => a + b, 0) }),
      }),
      (w: { key: string | undefined; sum: number }) => void windows.push(w),
      { messages: true },
    );
    expect(windows.sort((a, b) => a.sum - b.sum)).toEqual([
      { key: 'odd', sum: 4 },
      { key: 'even', sum: 6 },
    ]);
  });
});
