import { randomUUID } from 'node:crypto';
import { afterAll, describe } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { kvConformance } from './conformance.js';
import { RedisKeyValueStore } from './redis.js';
import { killRedisClients } from './testing.js';

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
