import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { kvConformance } from './conformance.js';
import { RedisKeyValueStore } from './redis.js';
import { codeOf, killRedisClients } from './testing.js';

const base = await serviceUrl('redis');
const id = randomUUID().slice(0, 8);
const name = `trellis-kv-test-${id}`;
// Each run gets its own namespace, so nothing collides and cleanup is one SCAN.
const url = base && `${base}?namespace=trellis-test:${id}&name=${name}`;
const gapUrl = base && `${base}?namespace=trellis-test:${id}-gap&retain=50`;

describe.skipIf(!base)('redis', () => {
  afterAll(async () => {
    const { Redis } = await import('ioredis');
    const r = new Redis(base!);
    const keys = await r.keys(`{trellis-test:${id}*`);
    if (keys.length) await r.del(...keys);
    r.disconnect();
  });
  kvConformance('redis', () => RedisKeyValueStore.open(url!), {
    reopen: () => RedisKeyValueStore.open(url!),
    gap: { open: () => RedisKeyValueStore.open(gapUrl!) },
    disrupt: () => killRedisClients(base!, name),
  });
});

describe.skipIf(!base)('redis: data loss', () => {
  it('a watch notices when Redis loses the data its revisions count (TRELLIS_E_KV_WATCH_GAP)', async () => {
    const ns = `trellis-test:${id}-lost`;
    const s = await RedisKeyValueStore.open(`${base}?namespace=${ns}&pollMs=100`);
    const { Redis } = await import('ioredis');
    const admin = new Redis(base!);
    try {
      const { revision } = await s.put('a', '1');
      const it = s.watch('', { fromRevision: revision })[Symbol.asyncIterator]();
      // The watcher is running and has delivered one change before the data goes away.
      const first = it.next();
      await s.put('b', '2');
      expect((await first).value).toMatchObject({ key: 'b' });
      // What a restart without persistence does to this namespace: everything is gone, and new
      // writes count revisions from 1 again, past the watcher's position.
      await admin.del(...(await admin.keys(`{${ns}}*`)));
      for (const k of ['c', 'd', 'e', 'f']) await s.put(k, 'new');
      expect(await codeOf(it.next())).toBe('TRELLIS_E_KV_WATCH_GAP');
    } finally {
      await s.close();
      const left = await admin.keys(`{${ns}}*`);
      if (left.length) await admin.del(...left);
      admin.disconnect();
    }
  });
});
