/**
 * Registry discovery on one KeyValueStore backend: every backend's test calls
 * `registryConformance`. It declares vitest blocks, so import it only from tests.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTrellisError } from '../../../core/errors.js';
import { silentLogger } from '../../../core/logger.js';
import type { KeyValueStore } from '../../../stores/types.js';
import { waitFor } from '../testing.js';
import { registerService } from './register.js';
import { RegistryDiscovery } from './registry.js';
import type { DiscoveredUpstream } from './types.js';

export interface RegistryConformanceOptions {
  /** Cuts the store's server connections (the server stays up), as a network blip would. */
  disrupt?: (store: KeyValueStore) => Promise<number>;
}

export function registryConformance(
  backend: string,
  open: () => Promise<KeyValueStore>,
  options: RegistryConformanceOptions = {},
): void {
  describe(`registry discovery on ${backend}`, () => {
    let store: KeyValueStore;
    const closers: (() => Promise<void>)[] = [];
    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      for (const c of closers.reverse()) await c();
      await store.close();
    });

    /** A watcher of a fresh prefix and what it has seen. */
    function watch(prefix = `services/${randomUUID()}/`) {
      const sets: DiscoveredUpstream[][] = [];
      let failures = 0;
      const source = new RegistryDiscovery({ store: backend, prefix }, async () => store, {
        logger: silentLogger(),
        onFailure: () => failures++,
      });
      closers.push(() => source.close());
      source.start((s) => sets.push(s));
      return {
        prefix,
        source,
        failures: () => failures,
        urls: () => (sets.at(-1) ?? []).map((u) => u.url),
      };
    }

    it('sees instances register, refresh and leave', async () => {
      const w = watch();
      await w.source.settled;
      expect(w.urls()).toEqual([]);
      const a = await registerService(store, { prefix: w.prefix, url: 'http://10.0.0.1:8080', ttl: 600 });
      const b = await registerService(store, {
        prefix: w.prefix,
        url: 'http://10.0.0.2:8080',
        weight: 3,
        ttl: 600,
      });
      closers.push(
        () => a.close(),
        () => b.close(),
      );
      await waitFor(() => w.urls().length === 2, 10_000, 'two instances');
      // Refreshed every ttl/3: still there well after one ttl.
      await new Promise((r) => setTimeout(r, 1_200));
      expect(w.urls()).toEqual(['http://10.0.0.1:8080', 'http://10.0.0.2:8080']);
      await a.close();
      await waitFor(() => w.urls().length === 1, 10_000, 'a deregistered');
      expect(w.urls()).toEqual(['http://10.0.0.2:8080']);
    });

    it('lists what registered before it started, and lets a silent instance lapse after its ttl', async () => {
      const prefix = `services/${randomUUID()}/`;
      await store.put(`${prefix}crashed`, JSON.stringify({ url: 'http://10.0.0.9:1', ttl: 400 }));
      const alive = await registerService(store, { prefix, url: 'http://10.0.0.8:1', ttl: 400 });
      closers.push(() => alive.close());
      const w = watch(prefix);
      await w.source.settled;
      expect(w.urls()).toEqual(['http://10.0.0.8:1', 'http://10.0.0.9:1']);
      await waitFor(() => w.urls().length === 1, 10_000, 'the crashed instance lapsing');
      expect(w.urls()).toEqual(['http://10.0.0.8:1']);
    });

    it('leaves out a value that is not an entry, and keeps the rest', async () => {
      const prefix = `services/${randomUUID()}/`;
      await store.put(`${prefix}junk`, 'hello');
      await store.put(`${prefix}path`, JSON.stringify({ url: 'http://10.0.0.1:1/api', ttl: 60_000 }));
      await store.put(`${prefix}good`, JSON.stringify({ url: 'http://10.0.0.2:1', ttl: 60_000 }));
      const w = watch(prefix);
      await w.source.settled;
      expect(w.urls()).toEqual(['http://10.0.0.2:1']);
      await store.delete(`${prefix}good`);
      await waitFor(() => w.urls().length === 0, 10_000, 'the good one deleted');
    });

    it('refuses to register what no caller could use', async () => {
      const bad = (o: Parameters<typeof registerService>[1]) =>
        registerService(store, o).then(
          () => 'registered',
          (err: unknown) => (isTrellisError(err) ? `${err.code} ${err.message}` : String(err)),
        );
      expect(await bad({ prefix: 'services/x', url: 'http://10.0.0.1:1' })).toMatch(
        /^TRELLIS_E_REGISTRY_ENTRY_INVALID .*end the prefix with \//,
      );
      expect(await bad({ prefix: 'services/x/', url: 'http://10.0.0.1:1/v1' })).toMatch(
        /^TRELLIS_E_REGISTRY_ENTRY_INVALID .*must be an origin without a path/,
      );
      expect(await bad({ prefix: 'services/x/', url: 'http://10.0.0.1:1', ttl: 10 })).toMatch(
        /^TRELLIS_E_REGISTRY_ENTRY_INVALID .*ttl/,
      );
    });

    it.skipIf(options.disrupt === undefined)(
      'keeps the last known set while the store connection is cut, and catches up after',
      async () => {
        const w = watch();
        const a = await registerService(store, { prefix: w.prefix, url: 'http://10.0.0.1:1', ttl: 1_000 });
        closers.push(() => a.close());
        await waitFor(() => w.urls().length === 1, 10_000, 'a registered');
        expect(await options.disrupt!(store)).toBeGreaterThan(0);
        // What is under test is the watcher: a write right after the cut may meet the dropped
        // connection (TRELLIS_E_STORE_UNAVAILABLE, as documented), so the registrant tries again.
        const b = await retryUnavailable(() =>
          registerService(store, { prefix: w.prefix, url: 'http://10.0.0.2:1', ttl: 1_000 }),
        );
        closers.push(() => b.close());
        await waitFor(() => w.urls().length === 2, 15_000, 'b seen after the cut');
        expect(w.urls()).toEqual(['http://10.0.0.1:1', 'http://10.0.0.2:1']);
      },
    );
  });
}

/** Runs `call` again while it fails with TRELLIS_E_STORE_UNAVAILABLE, for up to 10 s. */
async function retryUnavailable<T>(call: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (!isTrellisError(err) || err.code !== 'TRELLIS_E_STORE_UNAVAILABLE' || Date.now() > deadline)
        throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
