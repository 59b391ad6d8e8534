import { randomUUID } from 'node:crypto';
import { afterAll, describe } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { cuttableProxy } from '../kv/testing.js';
import { leaseConformance } from './conformance.js';
import { EtcdLeaseStore } from './etcd.js';

const base = await serviceUrl('etcd');
const ns = `trellis-test/${randomUUID().slice(0, 8)}/lease/`;
const target = base ? new URL(base.replace(/^etcd:/, 'http:')) : undefined;
const proxy = target && (await cuttableProxy(target.hostname, Number(target.port || 2379)));
const url = proxy && `etcd://${proxy.address}?namespace=${ns}`;

describe.skipIf(!base)('etcd', () => {
  afterAll(async () => {
    const s = await EtcdLeaseStore.open(url!);
    await s.client.delete().prefix(ns);
    await s.close();
    await proxy?.close();
  });
  // etcd TTLs are whole seconds.
  leaseConformance('etcd', () => EtcdLeaseStore.open(url!), {
    shortTtlMs: 1000,
    reopen: () => EtcdLeaseStore.open(url!),
    disrupt: async () => proxy!.cut(),
  });
});
