import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openKeyValueStore } from '../stores/kv/index.js';
import { serviceUrl, type TestService } from '../testing/services.js';
import type { ConfigChange } from './api.js';
import { ConfigRepository } from './repository.js';

/** The config store's promises on every real KeyValueStore engine. */
for (const service of ['postgres', 'redis', 'etcd'] as TestService[]) {
  const url = await serviceUrl(service);
  describe.skipIf(!url)(`ConfigRepository on ${service}`, () => {
    it('writes with If-Match, keeps history, rolls back and watches in order', async () => {
      const root = `it-${randomBytes(4).toString('hex')}/`;
      const repo = new ConfigRepository(await openKeyValueStore(url!), { root });
      try {
        const v1 = await repo.set('shop/gw', 'port: 1', { label: 'prod', author: 'a' });
        const ac = new AbortController();
        const seen: ConfigChange[] = [];
        const watching = (async () => {
          for await (const c of repo.watch('shop/', {
            label: 'prod',
            fromRevision: v1.revision,
            signal: ac.signal,
          })) {
            seen.push(c);
            if (seen.length === 3) ac.abort();
          }
        })();
        const v2 = await repo.set('shop/gw', 'port: 2', { label: 'prod', expectedRevision: v1.revision });
        await expect(
          repo.set('shop/gw', 'port: 3', { label: 'prod', expectedRevision: v1.revision }),
        ).rejects.toMatchObject({
          code: 'TRELLIS_E_CONFIG_REVISION_MISMATCH',
        });
        await repo.rollback('shop/gw', v1.revision, { label: 'prod', author: 'b' });
        await repo.delete('shop/gw', { label: 'prod' });
        await watching;
        expect(seen.map((c) => c.type)).toEqual(['put', 'put', 'delete']);
        expect(seen[0]!.revision).toBe(v2.revision);
        expect(seen[1]!.document?.value).toEqual({ port: 1 });
        const history = await repo.history('shop/gw', 'prod');
        expect(history.map((h) => (h.deleted ? 'deleted' : h.content))).toEqual([
          'deleted',
          'port: 1',
          'port: 2',
          'port: 1',
        ]);
      } finally {
        for (const e of (await repo.store.list(root)).entries) await repo.store.delete(e.key);
        await repo.close();
      }
    });
  });
}
