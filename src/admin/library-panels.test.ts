import { afterEach, describe, expect, it } from 'vitest';
import { createConfigClient } from '../config/client.js';
import { configPanel } from '../config/panel.js';
import { ConfigRepository } from '../config/repository.js';
import { projectionsPanel } from '../cqrs/panel.js';
import { ensureProjection, runProjection } from '../cqrs/projection.js';
import { countingProjection } from '../cqrs/testing/fixtures.js';
import { LeaderElector } from '../leader/elector.js';
import { leaderPanel } from '../leader/panel.js';
import { MemoryEventStore } from '../stores/events/memory.js';
import { MemoryKeyValueStore } from '../stores/kv/memory.js';
import { MemoryLeaseStore } from '../stores/lease/memory.js';
import { type AdminListener, startAdminListener } from './standalone.js';

async function eventually<T>(read: () => Promise<T> | T, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`not reached within ${ms} ms: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// The library patterns' panels, served by an application's own admin listener: what the
// gateway's dashboard shows for them when the application is one of its `admin.peers`.
describe('library panels on an application admin listener', () => {
  const closers: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  const panelsOf = async (admin: AdminListener) =>
    (
      (await (await fetch(`http://127.0.0.1:${admin.address.port}/admin/panels`)).json()) as {
        panels: { kind: string; data: Record<string, unknown> }[];
      }
    ).panels;

  it('shows the current leader to the leader and to a follower', async () => {
    const store = new MemoryLeaseStore();
    const timing = { leaseDuration: 600, renewDeadline: 400, retryPeriod: 100 };
    const a = new LeaderElector({ store, group: 'restock', identity: 'a', ...timing });
    a.start();
    await eventually(
      () => a.isLeader,
      (v) => v,
    );
    const b = new LeaderElector({ store, group: 'restock', identity: 'b', ...timing });
    b.start();
    closers.push(
      () => a.stop(),
      () => b.stop(),
    );
    const admin = await startAdminListener({ port: 0, panels: () => [leaderPanel(a), leaderPanel(b)] });
    closers.push(() => admin.close());
    const [pa, pb] = await eventually(
      () => panelsOf(admin),
      (p) => p[1]?.data.leader === 'a',
    );
    expect(pa).toMatchObject({
      kind: 'leader',
      data: { group: 'restock', identity: 'a', isLeader: true, leader: 'a' },
    });
    expect(pb).toMatchObject({ data: { identity: 'b', isLeader: false, leader: 'a' } });
    expect(pb!.data.token).toBe(pa!.data.token);
  });

  it('shows a projection’s lag behind the event store, then caught up', async () => {
    const store = new MemoryEventStore();
    const counts = countingProjection();
    await ensureProjection(store, counts);
    for (let i = 0; i < 5; i++) await store.append(`order-${i}`, [{ type: 'Placed', data: { i } }]);
    const admin = await startAdminListener({ port: 0, panels: () => [projectionsPanel(store, [counts])] });
    closers.push(() => admin.close());
    expect((await panelsOf(admin))[0]?.data).toMatchObject({ projections: [{ name: 'counts', lag: 5 }] });
    const ctl = new AbortController();
    const running = runProjection(store, counts, { signal: ctl.signal }).catch(() => {});
    closers.push(async () => {
      ctl.abort();
      await running;
    });
    await eventually(
      () => panelsOf(admin),
      (p) => (p[0]?.data.projections as { lag: number }[] | undefined)?.[0]?.lag === 0,
    );
  });

  it('shows where configuration comes from, each document, and the flags with their rollout', async () => {
    const repo = new ConfigRepository(new MemoryKeyValueStore());
    await repo.set('shop/cart', '{"currency":"EUR"}', { author: 'ana' });
    await repo.set('flags/new-checkout', '{"rollout":20}', { author: 'ana' });
    await repo.set('flags/broken', '{"rollout":"lots"}', { author: 'bo' });
    const client = await createConfigClient({ source: repo });
    closers.push(() => client.close());
    const admin = await startAdminListener({ port: 0, panels: () => [configPanel(client)] });
    closers.push(() => admin.close());
    const data = (await panelsOf(admin))[0]!.data;
    expect(data.health).toMatchObject({ ok: true, source: 'store' });
    expect(data.documents).toHaveLength(3);
    expect(data.flags).toEqual([
      { name: 'broken', malformed: true },
      { name: 'new-checkout', enabled: true, rollout: 20, rules: 0 },
    ]);
    // Values may hold secrets: the panel shows none.
    expect(JSON.stringify(data)).not.toContain('EUR');
  });

  it('refuses a short token', async () => {
    await expect(startAdminListener({ port: 0, token: 'short' })).rejects.toMatchObject({
      code: 'TRELLIS_E_ADMIN_OPTIONS_INVALID',
    });
  });
});
