import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteKeyValueStore } from './sqlite.js';
import { codeOf } from './testing.js';
import { WriteBatcher } from './write-batch.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-kv-batch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('WriteBatcher', () => {
  it('groups writes made in one turn, keeps call order, and fails only the op that failed', async () => {
    const batches: number[][] = [];
    const b = new WriteBatcher<number, number>((ops) => {
      batches.push(ops);
      return ops.map((n) => (n === 3 ? new Error('three') : n * 10));
    });
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => b.submit(n)));
    expect(batches).toEqual([[1, 2, 3, 4]]);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
      10,
      20,
      'three',
      40,
    ]);
  });

  it('sends writes made while a batch is in flight as the next batch, and bounds batch size', async () => {
    const batches: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const b = new WriteBatcher<number, number>(
      async (ops) => {
        batches.push(ops);
        if (batches.length === 1) await gate;
        return ops;
      },
      'microtask',
      { maxOps: 3, maxBytes: 1_000 },
    );
    const first = b.submit(0);
    await new Promise((r) => setImmediate(r));
    const rest = [1, 2, 3, 4].map((n) => b.submit(n));
    release();
    expect(await Promise.all([first, ...rest])).toEqual([0, 1, 2, 3, 4]);
    expect(batches).toEqual([[0], [1, 2, 3], [4]]);
    await b.idle();
  });

  it('rejects every op of a batch whose write throws', async () => {
    const b = new WriteBatcher<number, number>(() => {
      throw new Error('disk full');
    });
    const results = await Promise.allSettled([b.submit(1), b.submit(2)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});

describe('SQLite store with batched writes', () => {
  it('un-awaited puts and deletes apply in call order with consecutive revisions; CAS losers fail alone', async () => {
    const store = await SqliteKeyValueStore.open(`sqlite:${join(dir, 'order.db')}`);
    const first = await store.put('a', '0');
    const writes = [
      store.put('a', '1'),
      store.put('a', '2', { expectedRevision: first.revision }), // stale: a is already at +1
      store.delete('a'),
      store.put('a', '3'),
    ];
    const out = await Promise.allSettled(writes);
    expect(out.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(await codeOf(writes[1]!)).toBe('TRELLIS_E_KV_CONFLICT');
    const last = (out[3] as PromiseFulfilledResult<{ revision: number; version: number }>).value;
    expect(last.revision).toBe(first.revision + 3);
    expect(last.version).toBe(1);
    expect((await store.get('a'))?.value).toBe('3');
    await store.close();
  });

  it('close() writes what was accepted before it', async () => {
    const url = `sqlite:${join(dir, 'close.db')}`;
    const store = await SqliteKeyValueStore.open(url);
    const put = store.put('k', 'kept');
    await store.close();
    expect((await put).value).toBe('kept');
    const again = await SqliteKeyValueStore.open(url);
    expect((await again.get('k'))?.value).toBe('kept');
    await again.close();
  });
});
