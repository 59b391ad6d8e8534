import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { createMetricsRegistry } from '../../core/metrics.js';
import { MemoryKeyValueStore } from '../../stores/kv/memory.js';
import { createServicePool, type ServicePoolDeps, type UpstreamPool } from './pool.js';
import { serviceSchema } from './schema.js';
import { startOrigin, waitFor } from './testing.js';
import type { Upstream } from './types.js';

/** A pool's upstream set changing at run time (discovery), seen from the pool. */

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** A pool whose set the test sets by hand (its registry is an empty in-memory store). */
function pool(def: Record<string, unknown> = {}, deps: Partial<ServicePoolDeps> = {}): UpstreamPool {
  const kv = new MemoryKeyValueStore();
  const p = createServicePool(
    'catalog',
    serviceSchema.parse({ discovery: { registry: { store: 'kv', prefix: 'services/catalog/' } }, ...def }),
    { logger: silentLogger(), keyValue: async () => kv, ...deps },
  );
  cleanup.push(() => p.close());
  return p;
}

const set = (...urls: string[]) => urls.map((url) => ({ url, weight: 1 }));
const ids = (ups: readonly Upstream[]) => ups.map((u) => u.id);

describe('a pool with a changing upstream set', () => {
  it('starts with no upstream, then balances over whatever discovery hands it', async () => {
    const p = pool();
    await p.settled;
    expect(p.pick()).toBeUndefined();
    p.setDiscovered(set('http://127.0.0.1:1', 'http://127.0.0.1:2'));
    expect(new Set(Array.from({ length: 10 }, () => p.pick()!.id))).toEqual(
      new Set(['http://127.0.0.1:1', 'http://127.0.0.1:2']),
    );
    expect(p.status()).toMatchObject({
      upstreams: [{ source: 'registry' }, { source: 'registry' }],
      discovery: { source: 'registry', target: 'services/catalog/' },
    });
    p.setDiscovered([]);
    expect(p.pick()).toBeUndefined();
  });

  it('keeps the state of upstreams that stay: ejection, load, the same object', async () => {
    const p = pool({ balance: 'least-request', outlier: { consecutive5xx: 1 } });
    p.setDiscovered(set('http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3'));
    const [a, b] = p.upstreams;
    p.begin(a!);
    p.end(a!, 'http5xx', 1);
    expect(a!.ejected).toBe(true);
    for (let i = 0; i < 5; i++) p.begin(b!);
    p.setDiscovered(set('http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:4'));
    expect(ids(p.upstreams)).toEqual(['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:4']);
    expect(p.upstreams[0]).toBe(a);
    expect(p.upstreams[1]).toBe(b);
    expect(a!.ejected).toBe(true);
    expect(b!.inFlight).toBe(5);
    // The rebuilt least-request balancer sees the kept load: the new idle one wins every duel.
    for (let i = 0; i < 20; i++) expect(p.pick()!.id).toBe('http://127.0.0.1:4');
  });

  it('lets requests in flight on a removed upstream finish, then closes its connections', async () => {
    let release: () => void = () => {};
    const slow = await startOrigin((_req, res) => {
      release = () => res.end('late');
    });
    cleanup.push(() => slow.close());
    const p = pool();
    p.setDiscovered(set(slow.url));
    const u = p.pick()!;
    p.begin(u);
    const pending = u.dispatcher.request({ origin: u.origin, path: '/', method: 'GET' });
    await waitFor(() => slow.seen.length === 1);
    p.setDiscovered(set('http://127.0.0.1:1'));
    expect(ids(p.upstreams)).toEqual(['http://127.0.0.1:1']);
    release();
    const res = await pending;
    expect(await res.body.text()).toBe('late');
    p.end(u, 'success', 1);
    await expect(u.dispatcher.request({ origin: u.origin, path: '/', method: 'GET' })).rejects.toThrow(
      /closed|destroyed/i,
    );
  });

  it('brings back a removed upstream that is still draining as the same one', async () => {
    const p = pool();
    p.setDiscovered(set('http://127.0.0.1:1', 'http://127.0.0.1:2'));
    const b = p.upstreams[1]!;
    p.begin(b);
    p.setDiscovered(set('http://127.0.0.1:1'));
    p.setDiscovered(set('http://127.0.0.1:1', 'http://127.0.0.1:2'));
    expect(p.upstreams[1]).toBe(b);
    p.end(b, 'success', 1);
    // Not closed: it is in the set again (nothing listens there: refused, not "closed").
    await expect(b.dispatcher.request({ origin: b.origin, path: '/', method: 'GET' })).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
  });

  it('keeps the static upstreams and takes a discovered weight change', async () => {
    const p = pool({ upstreams: ['http://127.0.0.1:9'] });
    p.setDiscovered([
      { url: 'http://127.0.0.1:9', weight: 5 }, // the static one wins
      { url: 'http://127.0.0.1:1', weight: 1 },
    ]);
    expect(p.status().upstreams.map((u) => [u.id, u.weight, u.source])).toEqual([
      ['http://127.0.0.1:9', 1, 'static'],
      ['http://127.0.0.1:1', 1, 'registry'],
    ]);
    p.setDiscovered([{ url: 'http://127.0.0.1:1', weight: 3 }]);
    expect(p.upstreams[1]!.weight).toBe(3);
    const picks = Array.from({ length: 400 }, () => p.pick()!.id);
    expect(picks.filter((id) => id === 'http://127.0.0.1:1').length).toBe(300);
    p.setDiscovered([]);
    expect(ids(p.upstreams)).toEqual(['http://127.0.0.1:9']);
  });

  it('health-checks new upstreams and stops checking removed ones', async () => {
    const a = await startOrigin();
    const b = await startOrigin();
    cleanup.push(
      () => a.close(),
      () => b.close(),
    );
    const p = pool({ healthCheck: { interval: '20ms', timeout: '2s' } });
    p.setDiscovered(set(a.url));
    await waitFor(() => a.seen.includes('/healthz'), 5_000, 'a checked');
    p.setDiscovered(set(b.url));
    await waitFor(() => b.seen.includes('/healthz'), 5_000, 'b checked');
    await new Promise((r) => setTimeout(r, 100));
    const checksOfA = a.seen.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(a.seen.length).toBe(checksOfA);
    expect(p.status().upstreams[0]?.lastHealthCheck).toMatchObject({ passed: true });
  });

  it('counts the sets it was handed in the metrics, and the gauges show the current set', async () => {
    const registry = createMetricsRegistry();
    const p = pool({}, { metrics: registry });
    p.setDiscovered(set('http://127.0.0.1:1'));
    p.setDiscovered(set('http://127.0.0.1:2'));
    const text = await registry.metrics();
    expect(text).toMatch(
      /trellis_upstream_discovery_updates_total\{service="catalog",source="registry"\} [23]/,
    );
    expect(text).toContain('trellis_upstream_healthy{service="catalog",upstream="http://127.0.0.1:2"} 1');
    expect(text).not.toContain('upstream="http://127.0.0.1:1"');
  });
});
