import { randomUUID } from 'node:crypto';
import { afterAll, describe } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { leaseConformance } from './conformance.js';
import { EtcdLeaseStore } from './etcd.js';

const base = await serviceUrl('etcd');
const ns = `trellis-test/${randomUUID().slice(0, 8)}/lease/`;
const url = base && `${base}?namespace=${ns}`;

describe.skipIf(!base)('etcd', () => {
  afterAll(async () => {
    const s = await EtcdLeaseStore.open(url!);
    await s.client.delete().prefix(ns);
    await s.close();
  });
  // etcd TTLs are whole seconds.
  leaseConformance('etcd', () => EtcdLeaseStore.open(url!), {
    shortTtlMs: 1000,
    reopen: () => EtcdLeaseStore.open(url!),
  });
});
