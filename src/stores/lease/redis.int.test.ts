import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { killRedisClients } from '../kv/testing.js';
import { leaseConformance } from './conformance.js';
import { RedisLeaseStore } from './redis.js';

const base = await serviceUrl('redis');
const id = randomUUID().slice(0, 8);
const name = `trellis-lease-test-${id}`;
const url = base && `${base}?namespace=trellis-test:${id}&name=${name}`;

describe.skipIf(!base)('redis', () => {
  afterAll(async () => {
    const { Redis } = await import('ioredis');
    const r = new Redis(base!);
    const keys = await r.keys(`{trellis-test:${id}}*`);
    if (keys.length) await r.del(...keys);
    r.disconnect();
  });
  leaseConformance('redis', () => RedisLeaseStore.open(url!), {
    shortTtlMs: 150,
    reopen: () => RedisLeaseStore.open(url!),
    disrupt: () => killRedisClients(base!, name),
  });
});

describe.skipIf(!base)('redis: data loss', () => {
  it('tokens still grow after Redis loses its data (the token follows the server clock)', async () => {
    const ns = `trellis-test:${id}-lost`;
    const s = await RedisLeaseStore.open(`${base}?namespace=${ns}`);
    const { Redis } = await import('ioredis');
    const admin = new Redis(base!);
    try {
      const a = (await s.acquire('job', 'a', 60_000))!;
      expect(Number.isSafeInteger(a.token)).toBe(true);
      await admin.del(...(await admin.keys(`{${ns}}*`)));
      const b = (await s.acquire('job', 'b', 60_000))!;
      expect(b.token).toBeGreaterThan(a.token);
    } finally {
      await s.close();
      const left = await admin.keys(`{${ns}}*`);
      if (left.length) await admin.del(...left);
      admin.disconnect();
    }
  });
});
