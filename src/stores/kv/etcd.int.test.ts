import { randomUUID } from 'node:crypto';
import { afterAll, describe } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { kvConformance } from './conformance.js';
import { EtcdKeyValueStore } from './etcd.js';
import { cuttableProxy } from './testing.js';

const base = await serviceUrl('etcd');
const ns = `trellis-test/${randomUUID().slice(0, 8)}/`;
// Through a proxy whose connections the disrupt case cuts (etcd cannot drop one client itself).
const target = base ? new URL(base.replace(/^etcd:/, 'http:')) : undefined;
const proxy = target && (await cuttableProxy(target.hostname, Number(target.port || 2379)));
const url = proxy && `etcd://${proxy.address}?namespace=${ns}`;

describe.skipIf(!base)('etcd', () => {
  afterAll(async () => {
    const s = await EtcdKeyValueStore.open(url!);
    await s.client.delete().prefix(ns);
    await s.close();
    await proxy?.close();
  });
  kvConformance('etcd', () => EtcdKeyValueStore.open(url!), {
    reopen: () => EtcdKeyValueStore.open(url!),
    gap: {
      open: () => EtcdKeyValueStore.open(url!),
      // Compaction is cluster-wide: compact no further than the test needs, so other users of
      // this etcd lose as little history as possible.
      compact: async (s, start) => {
        await (s as EtcdKeyValueStore).client.kv.compact({ revision: start + 2, physical: true });
      },
    },
    disrupt: async () => proxy!.cut(),
  });
});
