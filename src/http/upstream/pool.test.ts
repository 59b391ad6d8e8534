import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { createMetricsRegistry } from '../../core/metrics.js';
import { createServicePool, type ServicePoolDeps } from './pool.js';
import { serviceSchema } from './schema.js';
import { startOrigin, waitFor } from './testing.js';
import type { ServicePool, Upstream } from './types.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function pool(def: Record<string, unknown>, deps: Partial<ServicePoolDeps> = {}) {
  const p = createServicePool('catalog', serviceSchema.parse(def), { logger: silentLogger(), ...deps });
  cleanup.push(() => p.close());
  return p;
}

async function origins(count: number) {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const o = await startOrigin((_req, res) => res.end(`origin-${i}`));
      cleanup.push(() => o.close());
      return o;
    }),
  );
}

async function get(p: ServicePool, upstream: Upstream): Promise<string> {
  p.begin(upstream);
  const res = await upstream.dispatcher.request({ origin: upstream.origin, path: '/', method: 'GET' });
  const text = await res.body.text();
  p.end(upstream, res.statusCode >= 500 ? 'http5xx' : 'success', 1);
  return text;
}

describe('createServicePool', () => {
  it('serves requests through keep-alive pools, balanced round robin by default', async () => {
    const [a, b] = await origins(2);
    const p = pool({ upstreams: [a!.url, b!.url] });
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) answers.push(await get(p, p.pick()!));
    expect(answers).toEqual(['origin-0', 'origin-1', 'origin-0', 'origin-1']);
    expect(p.timeouts).toEqual({ connect: 5000, headers: 15000, request: 30000 });
    expect(p.status().upstreams.map((u) => u.inFlight)).toEqual([0, 0]);
  });

  it('ejects a failing upstream, sends traffic elsewhere and re-admits it when the time is up', async () => {
    let now = 1_000_000;
    const p = pool(
      {
        upstreams: ['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3'],
        outlier: { consecutive5xx: 2, baseEjection: '30s' },
      },
      { clock: () => now },
    );
    const [first] = p.upstreams;
    for (let i = 0; i < 2; i++) {
      p.begin(first!);
      p.end(first!, 'http5xx', 1);
    }
    expect(first!.ejected).toBe(true);
    const picks = new Set(Array.from({ length: 30 }, () => p.pick()));
    expect(picks.has(first)).toBe(false);
    expect(picks.size).toBe(2);
    expect(p.status().upstreams[0]).toMatchObject({
      id: 'http://127.0.0.1:1',
      ejected: true,
      ejections: 1,
      ejectedUntil: new Date(1_030_000).toISOString(),
    });
    now += 30_000;
    expect(new Set(Array.from({ length: 30 }, () => p.pick())).has(first)).toBe(true);
  });

  it('never returns nothing: with every upstream out it still picks one', async () => {
    const p = pool({
      upstreams: ['http://127.0.0.1:1', 'http://127.0.0.1:2'],
      outlier: { consecutive5xx: 1, maxEjectedPercent: 100 },
    });
    for (const u of p.upstreams) p.end(u, 'http5xx', 1);
    // Never eject all: one stays in even at 100%.
    expect(p.upstreams.filter((u) => u.ejected)).toHaveLength(1);
    // And if health checks take the other out too, a pick still answers.
    for (const u of p.upstreams) (u as { healthy: boolean }).healthy = false;
    expect(p.pick()).toBeDefined();
  });

  it('skips upstreams already tried, and falls back to them when none are left', async () => {
    const p = pool({ upstreams: ['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3'] });
    const [a, b, c] = p.upstreams;
    for (let i = 0; i < 10; i++) expect(p.pick(undefined, new Set([a!, b!]))).toBe(c);
    expect(p.pick(undefined, new Set([a!, b!, c!]))).toBeDefined();
  });

  it('prefers an untried unhealthy upstream over a tried healthy one', async () => {
    const p = pool({ upstreams: ['http://127.0.0.1:1', 'http://127.0.0.1:2'] });
    const [a, b] = p.upstreams;
    (b as { healthy: boolean }).healthy = false;
    expect(p.pick(undefined, new Set([a!]))).toBe(b);
  });

  it('takes an upstream that fails active health checks out of rotation', async () => {
    const [a, b] = await origins(2);
    const healthy = { b: true };
    b!.handler = (req, res) => {
      res.statusCode = req.url === '/healthz' && !healthy.b ? 500 : 200;
      res.end('origin-1');
    };
    const p = pool({
      upstreams: [a!.url, b!.url],
      // A generous timeout: a loaded test machine must not make the healthy origin look dead.
      healthCheck: { interval: '10ms', timeout: '2s', unhealthyThreshold: 1, healthyThreshold: 1 },
    });
    healthy.b = false;
    await waitFor(() => !p.upstreams[1]!.healthy && p.upstreams[0]!.healthy, 5000, 'b unhealthy');
    expect(new Set(Array.from({ length: 10 }, () => p.pick()))).toEqual(new Set([p.upstreams[0]]));
    expect(p.status().upstreams[1]).toMatchObject({
      healthy: false,
      lastHealthCheck: { passed: false, detail: 'status 500' },
    });
    healthy.b = true;
    await waitFor(() => p.upstreams[1]!.healthy, 5000, 'b healthy');
  });

  it('hashes on the configured cookie, header or client IP', async () => {
    const ups = ['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3', 'http://127.0.0.1:4'];
    const byCookie = pool({ upstreams: ups, balance: 'consistent-hash', hashOn: { cookie: 'sid' } });
    expect(byCookie.hashKey({ cookie: 'a=1; sid=abc; b=2' }, '10.0.0.1')).toBe('abc');
    expect(byCookie.hashKey({}, '10.0.0.1')).toBeUndefined();
    const byHeader = pool({ upstreams: ups, balance: 'consistent-hash', hashOn: { header: 'X-User' } });
    expect(byHeader.hashKey({ 'x-user': 'u7' }, '10.0.0.1')).toBe('u7');
    const byIp = pool({ upstreams: ups, balance: 'consistent-hash' });
    expect(byIp.hashKey({}, '10.0.0.1')).toBe('10.0.0.1');
    const sticky = Array.from({ length: 10 }, () => byIp.pick(byIp.hashKey({}, '10.0.0.1')));
    expect(new Set(sticky).size).toBe(1);
    expect(pool({ upstreams: ups }).hashKey({ cookie: 'sid=abc' }, '10.0.0.1')).toBeUndefined();
  });

  it('exports health, ejection and in-flight metrics, and forgets a closed pool', async () => {
    const registry = createMetricsRegistry();
    const p = pool(
      { upstreams: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], outlier: { consecutiveConnectFailures: 1 } },
      { metrics: registry },
    );
    // A second pool (another service, or the next reload) shares the registry.
    const other = pool({ upstreams: ['http://127.0.0.1:3'] }, { metrics: registry });
    p.begin(p.upstreams[0]!);
    p.end(p.upstreams[0]!, 'connectFailure', 1);
    p.begin(p.upstreams[1]!);
    const text = await registry.metrics();
    expect(text).toContain('trellis_upstream_ejected{service="catalog",upstream="http://127.0.0.1:1"} 1');
    expect(text).toContain('trellis_upstream_healthy{service="catalog",upstream="http://127.0.0.1:2"} 1');
    expect(text).toContain('trellis_upstream_in_flight{service="catalog",upstream="http://127.0.0.1:2"} 1');
    expect(text).toContain(
      'trellis_upstream_ejections_total{service="catalog",upstream="http://127.0.0.1:1"} 1',
    );
    expect(text).toContain('upstream="http://127.0.0.1:3"');
    await other.close();
    expect(await registry.metrics()).not.toContain(
      'trellis_upstream_healthy{service="catalog",upstream="http://127.0.0.1:3"}',
    );
  });

  it('closes its pools after in-flight requests finish', async () => {
    let release: () => void = () => {};
    const [slow] = await origins(1);
    slow!.handler = (_req, res) => {
      release = () => res.end('late');
    };
    const p = pool({ upstreams: [slow!.url] });
    const u = p.pick()!;
    const pending = get(p, u);
    await waitFor(() => slow!.seen.length === 1);
    const closed = p.close();
    release();
    expect(await pending).toBe('late');
    await closed;
    await expect(u.dispatcher.request({ origin: u.origin, path: '/', method: 'GET' })).rejects.toThrow(
      /closed|destroyed/i,
    );
  });
});
