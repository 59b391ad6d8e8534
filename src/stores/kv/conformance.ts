/**
 * The KeyValueStore conformance suite: every backend's test file is one call of kvConformance.
 * It declares vitest blocks, so import it only from tests (it is not exported by trellis/stores).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTrellisError, type TrellisError } from '../../core/errors.js';
import type { KeyValueStore, KvChange } from '../types.js';
import { codeOf, until } from './testing.js';

/** What a backend's test file tells the suite beyond the factory. */
export interface KvConformanceOptions {
  /** Puts in the "watcher killed and resumed" case (default 10,000). */
  bigWatchPuts?: number;
  /** Opens the same store again (same data) to check durability across a restart. */
  reopen?: () => Promise<KeyValueStore>;
  /**
   * Makes changes before `revision` unavailable to watchers (compaction / trimming), either on the
   * given store or by returning a store with a tiny change log; used to check TRELLIS_E_KV_WATCH_GAP.
   */
  gap?: {
    open: () => Promise<KeyValueStore>;
    /** Called after 300 puts; makes revision `start + 1` unavailable (default: nothing, retention is small). */
    compact?: (store: KeyValueStore, start: number) => Promise<void>;
  };
  /** Cuts the store's server connections (the server stays up) and returns how many it cut. */
  disrupt?: (store: KeyValueStore) => Promise<number>;
  /** Largest value the store accepts (default 1 MiB). */
  maxValueBytes?: number;
}

/** Takes `n` changes from a watch (then stops it), failing after `ms`. */
async function take(iterable: AsyncIterable<KvChange>, n: number, ms = 20_000): Promise<KvChange[]> {
  const out: KvChange[] = [];
  if (n === 0) return out;
  const it = iterable[Symbol.asyncIterator]();
  const timeout = new Promise<never>((_, reject) => {
    const t = setTimeout(
      () => reject(new Error(`watch delivered ${out.length} of ${n} changes in ${ms}ms`)),
      ms,
    );
    t.unref();
  });
  let settled = true;
  try {
    while (out.length < n) {
      settled = false;
      const r = await Promise.race([it.next(), timeout]);
      settled = true;
      if (r.done) break;
      out.push(r.value);
    }
  } finally {
    // return() queues behind a pending next(), so after a timeout do not wait for it.
    if (settled) await it.return?.();
    else void it.return?.().catch(() => {});
  }
  return out;
}

/** Declares the KeyValueStore conformance suite for one backend. */
export function kvConformance(
  name: string,
  factory: () => Promise<KeyValueStore>,
  opts: KvConformanceOptions = {},
) {
  describe(`KeyValueStore conformance: ${name}`, () => {
    let store: KeyValueStore;
    let p: string;
    beforeAll(async () => {
      store = await factory();
    });
    afterAll(async () => {
      await store?.close();
    });
    const fresh = () => {
      p = `t${randomUUID().slice(0, 8)}/`;
      return p;
    };

    it('declares its features, each lacking one with a reason', () => {
      const all = ['watch', 'compareAndSet', 'durable', 'multiProcess'];
      for (const f of all) {
        const lacks = (store.features.lacks as Record<string, string | undefined>)[f];
        expect(store.features.supports.has(f as never) !== (lacks !== undefined), f).toBe(true);
        if (lacks !== undefined) expect(lacks.length).toBeGreaterThan(5);
      }
      expect(store.features.supports.has('watch')).toBe(true);
      expect(store.features.supports.has('compareAndSet')).toBe(true);
    });

    it('reports health', async () => {
      const h = await store.health();
      expect(h).toMatchObject({ ok: true, backend: store.backend });
    });

    it('puts and gets with revision, createRevision and version', async () => {
      fresh();
      expect(await store.get(`${p}a`)).toBeUndefined();
      const first = await store.put(`${p}a`, 'one');
      expect(first).toMatchObject({ key: `${p}a`, value: 'one', version: 1 });
      expect(first.revision).toBeGreaterThan(0);
      expect(first.createRevision).toBe(first.revision);
      const second = await store.put(`${p}a`, 'two ✓ ünïcödé 🎉');
      expect(second.revision).toBeGreaterThan(first.revision);
      expect(second.createRevision).toBe(first.revision);
      expect(second.version).toBe(2);
      expect(await store.get(`${p}a`)).toEqual(second);
      const other = await store.put(`${p}b`, '');
      expect(other.revision).toBeGreaterThan(second.revision);
      expect((await store.get(`${p}b`))?.value).toBe('');
    });

    it('compare-and-set: writes only at the expected revision', async () => {
      fresh();
      const created = await store.put(`${p}k`, 'v1', { expectedRevision: 0 });
      expect(await codeOf(store.put(`${p}k`, 'x', { expectedRevision: 0 }))).toBe('TRELLIS_E_KV_CONFLICT');
      const updated = await store.put(`${p}k`, 'v2', { expectedRevision: created.revision });
      expect(await codeOf(store.put(`${p}k`, 'x', { expectedRevision: created.revision }))).toBe(
        'TRELLIS_E_KV_CONFLICT',
      );
      expect(await codeOf(store.put(`${p}missing`, 'x', { expectedRevision: 5 }))).toBe(
        'TRELLIS_E_KV_CONFLICT',
      );
      expect(await store.get(`${p}missing`)).toBeUndefined();
      expect((await store.get(`${p}k`))?.value).toBe('v2');
      expect(await codeOf(store.delete(`${p}k`, { expectedRevision: created.revision }))).toBe(
        'TRELLIS_E_KV_CONFLICT',
      );
      expect(await store.delete(`${p}k`, { expectedRevision: updated.revision })).toBe(true);
    });

    it('refuses an expectedRevision that is not a number by type, writing nothing', async () => {
      fresh();
      const created = await store.put(`${p}typed`, 'v1');
      for (const bad of [String(created.revision), '0', -1, 1.5, Number.NaN, null]) {
        const opts = { expectedRevision: bad as unknown as number };
        const err = await store.put(`${p}typed`, 'x', opts).catch((e: unknown) => e as TrellisError);
        expect(err).toMatchObject({ code: 'TRELLIS_E_KV_REVISION_INVALID' });
        expect((err as Error).message).toMatch(/expectedRevision must be a non-negative integer/);
        if (typeof bad === 'string') expect((err as Error).message).toContain(`string "${bad}"`);
        expect(await codeOf(store.delete(`${p}typed`, opts))).toBe('TRELLIS_E_KV_REVISION_INVALID');
      }
      expect(await store.get(`${p}typed`)).toMatchObject({ value: 'v1', revision: created.revision });
    });

    it('compare-and-set race: of 20 writers at the same revision exactly one wins', async () => {
      fresh();
      const base = await store.put(`${p}race`, 'start');
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          store.put(`${p}race`, `w${i}`, { expectedRevision: base.revision }),
        ),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect(isTrellisError(r.reason, 'TRELLIS_E_KV_CONFLICT')).toBe(true);
      }
      const winner = (won[0] as PromiseFulfilledResult<{ value: string }>).value.value;
      expect((await store.get(`${p}race`))?.value).toBe(winner);
      // Creating a key: the same race with expectedRevision 0.
      const creates = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => store.put(`${p}new`, `c${i}`, { expectedRevision: 0 })),
      );
      expect(creates.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    });

    it('deletes: true once, then false; a re-created key starts again at version 1', async () => {
      fresh();
      const a = await store.put(`${p}d`, 'x');
      await store.put(`${p}d`, 'y');
      expect(await store.delete(`${p}d`)).toBe(true);
      expect(await store.get(`${p}d`)).toBeUndefined();
      expect(await store.delete(`${p}d`)).toBe(false);
      const again = await store.put(`${p}d`, 'z');
      expect(again.version).toBe(1);
      expect(again.createRevision).toBeGreaterThan(a.createRevision);
    });

    it('lists by prefix, sorted by key, at a revision covering every entry', async () => {
      fresh();
      // Characters that are wildcards in LIKE/GLOB patterns must match only themselves.
      const keys = ['b', 'a', 'c/d', 'a%', 'a_', 'x*', 'x[1]', 'zz'];
      for (const k of keys) await store.put(`${p}${k}`, k);
      await store.put(`${p.slice(0, -1)}-outside`, 'no');
      const all = await store.list(p);
      expect(all.entries.map((e) => e.key.slice(p.length))).toEqual([...keys].sort());
      expect(all.revision).toBeGreaterThanOrEqual(Math.max(...all.entries.map((e) => e.revision)));
      expect((await store.list(`${p}a%`)).entries.map((e) => e.value)).toEqual(['a%']);
      expect((await store.list(`${p}a_`)).entries.map((e) => e.value)).toEqual(['a_']);
      expect((await store.list(`${p}x[`)).entries.map((e) => e.value)).toEqual(['x[1]']);
      expect((await store.list(`${p}x*`)).entries.map((e) => e.value)).toEqual(['x*']);
      expect((await store.list(`${p}q`)).entries).toEqual([]);
    });

    it('rejects oversize values and bad keys with typed errors', async () => {
      fresh();
      const limit = opts.maxValueBytes ?? 1024 * 1024;
      expect(await codeOf(store.put(`${p}big`, 'x'.repeat(limit + 1)))).toBe('TRELLIS_E_KV_VALUE_TOO_LARGE');
      expect(await store.get(`${p}big`)).toBeUndefined();
      const ok = await store.put(`${p}fits`, 'y'.repeat(limit));
      expect((await store.get(`${p}fits`))?.value.length).toBe(limit);
      expect(ok.version).toBe(1);
      expect(await codeOf(store.put('', 'x'))).toBe('TRELLIS_E_KV_KEY_INVALID');
    });

    it('watches from a revision: puts and deletes under the prefix, in order, once', async () => {
      fresh();
      const start = (await store.list(p)).revision;
      await store.put(`${p}one`, '1');
      await store.put(`${p.slice(0, -1)}-elsewhere`, 'not watched');
      await store.put(`${p}two`, '2');
      await store.delete(`${p}one`);
      const seen = await take(store.watch(p, { fromRevision: start }), 3);
      expect(seen.map((c) => [c.type, c.key.slice(p.length), c.value])).toEqual([
        ['put', 'one', '1'],
        ['put', 'two', '2'],
        ['delete', 'one', undefined],
      ]);
      expect(seen.map((c) => c.revision)).toEqual([...seen.map((c) => c.revision)].sort((a, b) => a - b));
    });

    it('a watch without fromRevision delivers only changes made after it started', async () => {
      fresh();
      await store.put(`${p}before`, 'old');
      const iterable = store.watch(p);
      const it = iterable[Symbol.asyncIterator]();
      const first = it.next();
      let n = 0;
      let got: KvChange | undefined;
      first.then((r) => {
        got = r.value;
      });
      await until(async () => {
        await store.put(`${p}after`, String(n++));
        return got;
      });
      await it.return?.();
      expect(got?.key).toBe(`${p}after`);
    });

    it('a watch ends when its signal aborts', async () => {
      fresh();
      const ac = new AbortController();
      const seen: KvChange[] = [];
      const done = (async () => {
        for await (const c of store.watch(p, { signal: ac.signal })) seen.push(c);
      })();
      await until(async () => {
        await store.put(`${p}x`, 'x');
        return seen.length > 0;
      });
      ac.abort();
      await done;
      expect(seen[0]?.key).toBe(`${p}x`);
    });

    it('10,000 puts while a watcher runs; killed and resumed from its last revision, it sees each once, in order', async () => {
      fresh();
      const total = opts.bigWatchPuts ?? 10_000;
      const start = (await store.list(p)).revision;
      const written: number[] = [];
      const writer = (async () => {
        // Ten writers at a time: revisions interleave, commit order is the store's business.
        let next = 0;
        await Promise.all(
          Array.from({ length: 10 }, async () => {
            while (next < total) {
              const i = next++;
              written.push((await store.put(`${p}k${i % 500}`, String(i))).revision);
            }
          }),
        );
      })();
      const half = await take(store.watch(p, { fromRevision: start }), Math.floor(total / 2), 120_000);
      const last = half.at(-1)!.revision;
      const rest = await take(store.watch(p, { fromRevision: last }), total - half.length, 120_000);
      await writer;
      const seen = [...half, ...rest].map((c) => c.revision);
      for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
      expect(seen).toEqual([...written].sort((a, b) => a - b));
    }, 240_000);

    it('closes: operations after close are refused with a typed error', async () => {
      const s = await factory();
      await s.put(`${fresh()}c`, 'x');
      await s[Symbol.asyncDispose]();
      expect(await codeOf(s.get(`${p}c`))).toBe('TRELLIS_E_STORE_CLOSED');
    });

    it('a watch from a revision the store no longer holds fails with TRELLIS_E_KV_WATCH_GAP', async () => {
      expect(opts.gap, 'every backend must show how its watch reports a gap (opts.gap)').toBeDefined();
      const s = await opts.gap!.open();
      try {
        fresh();
        const start = (await s.list(p)).revision;
        for (let i = 0; i < 300; i++) await s.put(`${p}g${i % 7}`, String(i));
        await opts.gap!.compact?.(s, start);
        expect(await codeOf(take(s.watch(p, { fromRevision: start }), 300))).toBe('TRELLIS_E_KV_WATCH_GAP');
        // A fresh list + watch from its revision works again.
        const { revision } = await s.list(p);
        const next = take(s.watch(p, { fromRevision: revision }), 1);
        await s.put(`${p}after-gap`, 'ok');
        expect((await next)[0]?.key).toBe(`${p}after-gap`);
      } finally {
        await s.close();
      }
    });

    it('keeps data and growing revisions across a restart (when durable)', async () => {
      if (!store.features.supports.has('durable')) {
        expect(store.features.lacks.durable).toBeTruthy();
        return;
      }
      expect(opts.reopen, 'a durable backend must pass opts.reopen to the suite').toBeDefined();
      fresh();
      const s1 = await factory();
      const a = await s1.put(`${p}durable`, 'kept');
      await s1.close();
      const s2 = await opts.reopen!();
      try {
        expect(await s2.get(`${p}durable`)).toEqual(a);
        const b = await s2.put(`${p}durable2`, 'x');
        expect(b.revision).toBeGreaterThan(a.revision);
        const seen = await take(s2.watch(p, { fromRevision: a.revision - 1 }), 2);
        expect(seen.map((c) => c.key)).toEqual([`${p}durable`, `${p}durable2`]);
      } finally {
        await s2.close();
      }
    });

    it('when the server drops its connections: a typed error at worst, then works again', async () => {
      // Embedded backends have no server or connection to lose.
      if (!opts.disrupt) return expect(['memory', 'sqlite']).toContain(store.backend);
      fresh();
      await store.put(`${p}before`, '1');
      // A watcher rides out a short outage (it retries from its last revision) and sees the change.
      const watched = take(store.watch(p, { fromRevision: (await store.list(p)).revision }), 1, 30_000).then(
        (c) => c[0]?.key,
        (err) => (isTrellisError(err) ? err.code : String(err)),
      );
      expect(await opts.disrupt!(store)).toBeGreaterThan(0);
      const errors: string[] = [];
      await until(
        async () => {
          try {
            await store.put(`${p}after`, '2');
            return true;
          } catch (err) {
            errors.push(isTrellisError(err) ? err.code : `untyped: ${String(err)}`);
            return false;
          }
        },
        20_000,
        'the store to work again',
      );
      expect(errors.filter((c) => c !== 'TRELLIS_E_STORE_UNAVAILABLE')).toEqual([]);
      expect((await store.get(`${p}after`))?.value).toBe('2');
      expect(await watched).toBe(`${p}after`);
      expect((await store.health()).ok).toBe(true);
    }, 60_000);
  });
}
