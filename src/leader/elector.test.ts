import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { TrellisError } from '../core/errors.js';
import { createMetricsRegistry } from '../core/metrics.js';
import { MemoryLeaseStore } from '../stores/lease/memory.js';
import type { Lease, LeaseStore } from '../stores/types.js';
import { LeaderElector, type LeaderElectorOptions, type StoppedLeadingInfo } from './elector.js';

const timing = { leaseDuration: 600, renewDeadline: 400, retryPeriod: 100 };

async function until<T>(probe: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) throw new Error('condition not met before the deadline');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A lease store whose connection the test can cut (every call fails while cut). */
function cuttable(inner: LeaseStore): LeaseStore & { cut: boolean } {
  const s = {
    cut: false,
    backend: inner.backend,
    features: inner.features,
    health: () => inner.health(),
    close: () => inner.close(),
    [Symbol.asyncDispose]: () => inner.close(),
    acquire: (...a: Parameters<LeaseStore['acquire']>) => (s.cut ? refused() : inner.acquire(...a)),
    renew: (...a: Parameters<LeaseStore['renew']>) => (s.cut ? refused() : inner.renew(...a)),
    release: (...a: Parameters<LeaseStore['release']>) => (s.cut ? refused() : inner.release(...a)),
    read: (...a: Parameters<LeaseStore['read']>) => (s.cut ? refused() : inner.read(...a)),
  };
  return s;
}
const refused = () => Promise.reject(new TrellisError('TRELLIS_E_STORE_UNAVAILABLE', 'connection refused'));

const electors: LeaderElector[] = [];
afterEach(async () => {
  await Promise.all(electors.splice(0).map((e) => e.stop()));
});

function candidate(store: LeaseStore, identity: string, extra: Partial<LeaderElectorOptions> = {}) {
  const events: string[] = [];
  const stopped: StoppedLeadingInfo[] = [];
  const signals: AbortSignal[] = [];
  const e = new LeaderElector({
    store,
    group: 'jobs',
    identity,
    ...timing,
    onStartedLeading: async (ctx) => {
      events.push(`start:${ctx.token}`);
      signals.push(ctx.signal);
      await new Promise((r) => ctx.signal.addEventListener('abort', r, { once: true }));
    },
    onStoppedLeading: (info) => stopped.push(info),
    ...extra,
  });
  electors.push(e);
  return { e, events, stopped, signals };
}

describe('LeaderElector', () => {
  it('elects exactly one leader among candidates and reports it to the others', async () => {
    const store = new MemoryLeaseStore();
    const seen: string[] = [];
    const cs = ['a', 'b', 'c'].map((id) =>
      candidate(store, id, { onNewLeader: (leader) => seen.push(`${id}->${leader}`) }),
    );
    for (const c of cs) c.e.start();
    const leader = await until(() => cs.find((c) => c.e.isLeader));
    // Stay a few renew periods: the leader keeps the lease, nobody else leads.
    // Not waiting for an event: checking that nothing changes over a few renew periods.
    await new Promise((r) => setTimeout(r, 3 * timing.retryPeriod));
    expect(cs.filter((c) => c.e.isLeader)).toEqual([leader]);
    expect(leader.e.token).toBe(1);
    expect(leader.events).toEqual(['start:1']);
    await until(() => cs.every((c) => c.e.leader?.identity === leader.e.identity) || undefined);
    expect(seen.filter((s) => s.endsWith(`->${leader.e.identity}`))).toHaveLength(3);
  });

  it('hands over quickly after a graceful stop, with a larger token, after the old work ended', async () => {
    const store = new MemoryLeaseStore();
    const cs = ['a', 'b'].map((id) => candidate(store, id));
    for (const c of cs) c.e.start();
    const first = await until(() => cs.find((c) => c.e.isLeader));
    const second = cs.find((c) => c !== first)!;
    const t0 = performance.now();
    await first.e.stop();
    expect(first.signals[0]!.aborted).toBe(true);
    expect(first.stopped).toEqual([{ token: 1, reason: 'released' }]);
    await until(() => second.e.isLeader);
    // Released at once: the successor needs at most about one retry period, not a lease duration.
    expect(performance.now() - t0).toBeLessThan(timing.leaseDuration);
    expect(second.e.token).toBe(2);
  });

  it('aborts the leader the moment its renew deadline passes when the store is cut off', async () => {
    const inner = new MemoryLeaseStore();
    const cutOff = cuttable(inner);
    const leader = candidate(cutOff, 'a');
    leader.e.start();
    await until(() => leader.e.isLeader);
    const t0 = performance.now();
    cutOff.cut = true;
    await until(() => leader.signals[0]!.aborted, 3000);
    const tookMs = performance.now() - t0;
    // In doubt after at most renewDeadline (+ a scheduling margin), and before the lease lapses for others.
    expect(tookMs).toBeLessThan(timing.leaseDuration);
    expect(leader.e.isLeader).toBe(false);
    expect(leader.signals[0]!.reason).toMatchObject({ code: 'TRELLIS_E_LEADERSHIP_LOST' });
    await until(() => leader.stopped[0]);
    expect(leader.stopped[0]!.reason).toBe('renew-deadline');

    // A rival on the healthy store takes over once the lease lapses, with a larger token.
    const rival = candidate(inner, 'b');
    rival.e.start();
    await until(() => rival.e.isLeader);
    expect(rival.e.token).toBe(2);
    cutOff.cut = false;
  });

  it('ends the term at once when the lease was taken over (renew says lost)', async () => {
    const store = new MemoryLeaseStore();
    const leader = candidate(store, 'a');
    leader.e.start();
    await until(() => leader.e.isLeader);
    // Simulate a pause longer than the lease: the lease lapses and another holder takes it.
    const held = (await store.read('jobs')) as Lease;
    await store.release(held);
    await store.acquire('jobs', 'intruder', 10_000);
    await until(() => leader.stopped[0]);
    expect(leader.stopped[0]).toEqual({ token: 1, reason: 'lost' });
    expect(leader.e.isLeader).toBe(false);
    expect(leader.signals[0]!.aborted).toBe(true);
  });

  it('resign() gives the lease to another candidate and campaigns again', async () => {
    const store = new MemoryLeaseStore();
    const registry = createMetricsRegistry();
    const cs = ['a', 'b'].map((id) => candidate(store, id, { registry }));
    for (const c of cs) c.e.start();
    const first = await until(() => cs.find((c) => c.e.isLeader));
    const second = cs.find((c) => c !== first)!;
    first.e.resign();
    await until(() => second.e.isLeader);
    expect(first.stopped[0]?.reason).toBe('resigned');
    second.e.resign();
    await until(() => first.e.isLeader);
    expect(first.e.token).toBe(3);
    const metrics = await registry.metrics();
    expect(metrics).toContain(`trellis_leader_is_leader{group="jobs",identity="${first.e.identity}"} 1`);
    expect(metrics).toContain('trellis_leader_terms_total{group="jobs",reason="resigned"} 2');
  });

  it('gives up leadership when onStartedLeading fails', async () => {
    const store = new MemoryLeaseStore();
    const c = candidate(store, 'a', {
      onStartedLeading: async () => {
        throw new Error('job crashed');
      },
    });
    c.e.start();
    await until(() => c.stopped[0]);
    expect(c.stopped[0]).toEqual({ token: 1, reason: 'work-failed' });
    expect(await store.read('jobs')).toBeUndefined();
  });

  it('refuses timings that break the client-go invariants', () => {
    const store = new MemoryLeaseStore();
    expect(() => new LeaderElector({ store, group: 'g', leaseDuration: 1000, renewDeadline: 1000 })).toThrow(
      /leaseDuration \(1000ms\) must be greater than renewDeadline/,
    );
    expect(
      () =>
        new LeaderElector({ store, group: 'g', leaseDuration: 3000, renewDeadline: 1000, retryPeriod: 900 }),
    ).toThrow(/renewDeadline \(1000ms\) must be greater than 1.2 × retryPeriod/);
    const e = new LeaderElector({ store, group: 'g' });
    expect(e.timing).toEqual({ leaseDuration: 15_000, renewDeadline: 10_000, retryPeriod: 2_000 });
  });
});
