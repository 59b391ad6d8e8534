/**
 * The LeaseStore conformance suite: every backend's test file is one call of leaseConformance.
 * It declares vitest blocks, so import it only from tests (it is not exported by trellis/stores).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTrellisError } from '../../core/errors.js';
import { codeOf, until } from '../kv/testing.js';
import type { Lease, LeaseStore } from '../types.js';

/** What a backend's test file tells the suite beyond the factory. */
export interface LeaseConformanceOptions {
  /** TTL for leases meant to lapse during a test; at least the backend's smallest TTL (default 300). */
  shortTtlMs?: number;
  /** Opens the same store again (same data) to check tokens keep growing across a restart. */
  reopen?: () => Promise<LeaseStore>;
  /** Cuts the store's server connections (the server stays up) and returns how many it cut. */
  disrupt?: (store: LeaseStore) => Promise<number>;
}

/** Declares the LeaseStore conformance suite for one backend. */
export function leaseConformance(
  name: string,
  factory: () => Promise<LeaseStore>,
  opts: LeaseConformanceOptions = {},
) {
  const short = opts.shortTtlMs ?? 300;
  const long = 60_000;
  describe(`LeaseStore conformance: ${name}`, () => {
    let store: LeaseStore;
    beforeAll(async () => {
      store = await factory();
    });
    afterAll(async () => {
      await store?.close();
    });
    const fresh = () => `lease-${randomUUID().slice(0, 8)}`;

    it('declares its features, each lacking one with a reason, and reports health', async () => {
      for (const f of ['durable', 'multiProcess']) {
        const lacks = (store.features.lacks as Record<string, string | undefined>)[f];
        expect(store.features.supports.has(f as never) !== (lacks !== undefined), f).toBe(true);
        if (lacks !== undefined) expect(lacks.length).toBeGreaterThan(5);
      }
      expect(await store.health()).toMatchObject({ ok: true, backend: store.backend });
    });

    it('acquires a free lease; others are refused while it is held; the holder re-acquires with the same token', async () => {
      const n = fresh();
      const before = Date.now();
      const a = (await store.acquire(n, 'a', long))!;
      expect(a).toMatchObject({ name: n, holder: 'a' });
      expect(a.token).toBeGreaterThan(0);
      expect(a.expiresAt).toBeGreaterThanOrEqual(before + long - 1000);
      expect(await store.acquire(n, 'b', long)).toBeUndefined();
      expect(await store.read(n)).toMatchObject({ holder: 'a', token: a.token });
      const again = (await store.acquire(n, 'a', long))!;
      expect(again.token).toBe(a.token);
      expect(await store.read(fresh())).toBeUndefined();
    });

    it('renews a held lease; a wrong holder or token cannot renew', async () => {
      const n = fresh();
      const a = (await store.acquire(n, 'a', long))!;
      const r = await store.renew(a, long);
      expect(r.token).toBe(a.token);
      expect(r.expiresAt).toBeGreaterThanOrEqual(a.expiresAt - 1000);
      expect(await codeOf(store.renew({ ...a, holder: 'b' }, long))).toBe('TRELLIS_E_LEASE_LOST');
      expect(await codeOf(store.renew({ ...a, token: a.token + 1 }, long))).toBe('TRELLIS_E_LEASE_LOST');
      expect(await codeOf(store.renew({ ...a, name: fresh() }, long))).toBe('TRELLIS_E_LEASE_LOST');
    });

    it('release lets another holder acquire at once, with a larger token', async () => {
      const n = fresh();
      const a = (await store.acquire(n, 'a', long))!;
      expect(await store.release({ ...a, holder: 'b' })).toBe(false);
      expect(await store.release(a)).toBe(true);
      expect(await store.read(n)).toBeUndefined();
      const b = (await store.acquire(n, 'b', long))!;
      expect(b.token).toBeGreaterThan(a.token);
      expect(await store.release(a)).toBe(false);
      expect(await codeOf(store.renew(a, long))).toBe('TRELLIS_E_LEASE_LOST');
      expect(await store.read(n)).toMatchObject({ holder: 'b', token: b.token });
    });

    it('after expiry a new holder gets a larger token and the stale holder cannot renew', async () => {
      const n = fresh();
      const a = (await store.acquire(n, 'a', short))!;
      const b = await until(() => store.acquire(n, 'b', long), short + 10_000, 'the lease to lapse');
      expect(b.token).toBeGreaterThan(a.token);
      expect(await codeOf(store.renew(a, long))).toBe('TRELLIS_E_LEASE_LOST');
      expect(await store.release(a)).toBe(false);
      expect(await store.read(n)).toMatchObject({ holder: 'b', token: b.token });
      // The new holder re-acquiring while it holds keeps its token.
      const c = (await store.acquire(n, 'b', long))!;
      expect(c.token).toBe(b.token);
    });

    it('a lapsed lease is not read back and its holder re-acquires with a larger token', async () => {
      const n = fresh();
      const a = (await store.acquire(n, 'a', short))!;
      await until(async () => (await store.read(n)) === undefined, short + 10_000, 'the lease to lapse');
      const again = (await store.acquire(n, 'a', long))!;
      expect(again.token).toBeGreaterThan(a.token);
    });

    it('of 10 contenders racing for a free lease exactly one wins', async () => {
      const n = fresh();
      const got = await Promise.all(Array.from({ length: 10 }, (_, i) => store.acquire(n, `h${i}`, long)));
      const winners = got.filter((l): l is Lease => l !== undefined);
      expect(winners).toHaveLength(1);
      expect(await store.read(n)).toMatchObject({ holder: winners[0]!.holder, token: winners[0]!.token });
    });

    it('a holder renewing without pause never loses the lease to a contender', async () => {
      // Regression: on etcd a renew moves the key to a fresh etcd lease, and a contender that read
      // the old (revoked) lease's TTL took the key from its live holder.
      const leaseName = fresh();
      let held = (await store.acquire(leaseName, 'holder', long))!;
      const deadline = Date.now() + 1500;
      let stolen: Lease | undefined;
      await Promise.all([
        (async () => {
          while (Date.now() < deadline && !stolen) held = await store.renew(held, long);
        })(),
        ...Array.from({ length: 4 }, async () => {
          while (Date.now() < deadline && !stolen) {
            stolen = (await store.acquire(leaseName, 'contender', long)) ?? stolen;
          }
        }),
      ]);
      expect(stolen).toBeUndefined();
      expect((await store.read(leaseName))?.holder).toBe('holder');
    });

    it('tokens keep growing for a name across many hand-overs', async () => {
      const n = fresh();
      let last = 0;
      for (let i = 0; i < 5; i++) {
        const l = (await store.acquire(n, `h${i}`, long))!;
        expect(l.token).toBeGreaterThan(last);
        last = l.token;
        expect(await store.release(l)).toBe(true);
      }
    });

    it('rejects bad arguments with typed errors', async () => {
      expect(await codeOf(store.acquire('', 'a', 1000))).toBe('TRELLIS_E_LEASE_INVALID');
      expect(await codeOf(store.acquire(fresh(), '', 1000))).toBe('TRELLIS_E_LEASE_INVALID');
      expect(await codeOf(store.acquire(fresh(), 'a', 0))).toBe('TRELLIS_E_LEASE_INVALID');
    });

    it('tokens keep growing across a store restart (when durable)', async () => {
      if (!store.features.supports.has('durable')) {
        expect(store.features.lacks.durable).toBeTruthy();
        return;
      }
      expect(opts.reopen, 'a durable backend must pass opts.reopen to the suite').toBeDefined();
      const n = fresh();
      const s1 = await factory();
      const a = (await s1.acquire(n, 'a', long))!;
      expect(await s1.release(a)).toBe(true);
      await s1.close();
      const s2 = await opts.reopen!();
      try {
        const b = (await s2.acquire(n, 'b', long))!;
        expect(b.token).toBeGreaterThan(a.token);
      } finally {
        await s2.close();
      }
    });

    it('closes: operations after close are refused with a typed error', async () => {
      const s = await factory();
      await s[Symbol.asyncDispose]();
      expect(await codeOf(s.read(fresh()))).toBe('TRELLIS_E_STORE_CLOSED');
    });

    it('when the server drops its connections: a typed error at worst, then works again', async () => {
      // Embedded backends have no server or connection to lose.
      if (!opts.disrupt) return expect(['memory', 'sqlite']).toContain(store.backend);
      const n = fresh();
      const a = (await store.acquire(n, 'a', long))!;
      expect(await opts.disrupt!(store)).toBeGreaterThan(0);
      const errors: string[] = [];
      const r = await until(
        async () => {
          try {
            return await store.renew(a, long);
          } catch (err) {
            errors.push(isTrellisError(err) ? err.code : `untyped: ${String(err)}`);
            return undefined;
          }
        },
        20_000,
        'the store to work again',
      );
      expect(r.token).toBe(a.token);
      expect(errors.filter((c) => c !== 'TRELLIS_E_STORE_UNAVAILABLE')).toEqual([]);
    }, 60_000);
  });
}
