import { randomUUID } from 'node:crypto';
import { afterAll, describe } from 'vitest';
import { EtcdKeyValueStore } from '../../../stores/kv/etcd.js';
import { PostgresKeyValueStore } from '../../../stores/kv/postgres.js';
import { RedisKeyValueStore } from '../../../stores/kv/redis.js';
import { cuttableProxy, killRedisClients, terminateBackends } from '../../../stores/kv/testing.js';
import { serviceUrl } from '../../../testing/services.js';
import { registryConformance } from './conformance.js';

/** Registry discovery on the server backends, each with its connections cut once mid-watch. */

const id = randomUUID().slice(0, 8);

const redis = await serviceUrl('redis');
const redisName = `trellis-registry-test-${id}`;
describe.skipIf(!redis)('redis', () => {
  afterAll(async () => {
    const { Redis } = await import('ioredis');
    const r = new Redis(redis!);
    const keys = await r.keys(`{trellis-registry-test:${id}*`);
    if (keys.length) await r.del(...keys);
    r.disconnect();
  });
  registryConformance(
    'redis',
    () => RedisKeyValueStore.open(`${redis}?namespace=trellis-registry-test:${id}&name=${redisName}`),
    { disrupt: () => killRedisClients(redis!, redisName) },
  );
});

const etcd = await serviceUrl('etcd');
const ns = `trellis-registry-test/${id}/`;
const target = etcd ? new URL(etcd.replace(/^etcd:/, 'http:')) : undefined;
const proxy = target && (await cuttableProxy(target.hostname, Number(target.port || 2379)));
describe.skipIf(!etcd)('etcd', () => {
  afterAll(async () => {
    const s = await EtcdKeyValueStore.open(`etcd://${proxy!.address}?namespace=${ns}`);
    await s.client.delete().prefix(ns);
    await s.close();
    await proxy?.close();
  });
  registryConformance('etcd', () => EtcdKeyValueStore.open(`etcd://${proxy!.address}?namespace=${ns}`), {
    disrupt: async () => proxy!.cut(),
  });
});

const postgres = await serviceUrl('postgres');
const app = `trellis-registry-test-${id}`;
describe.skipIf(!postgres)('postgres', () => {
  const sep = postgres?.includes('?') ? '&' : '?';
  registryConformance(
    'postgres',
    () => PostgresKeyValueStore.open(`${postgres}${sep}application_name=${app}`),
    {
      disrupt: () => terminateBackends(postgres!, app),
    },
  );
});
