import { randomUUID } from 'node:crypto';
import { afterAll, describe } from 'vitest';
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
