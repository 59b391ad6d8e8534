import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CuttableProxy, cuttableProxy } from '../../../src/stores/kv/testing.js';
import { serviceUrl } from '../../../src/testing/services.js';
import {
  type GatewayProcess,
  type Origin,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

const redis = await serviceUrl('redis');

// A Redis that hangs (connections open, no answers) is worse than one that is down: every store
// call waits the whole storeTimeout. The breaker in front of the rate-limit and cache stores
// must make that cost a few requests, not all, and close again by itself.
describe.skipIf(!redis)('trellis gateway: a hung shared store (Redis behind a frozen TCP proxy)', () => {
  let dir: TempDir;
  let origin: Origin;
  let proxy: CuttableProxy;
  let gateway: GatewayProcess;
  const prefix = `e2e:${randomUUID()}:`;

  beforeAll(async () => {
    dir = tempDir();
    origin = await startOrigin('origin');
    const target = new URL(redis!);
    proxy = await cuttableProxy(target.hostname, Number(target.port || 6379));
    const store = `redis://${proxy.address}${target.pathname === '/' ? '' : target.pathname}`;
    gateway = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
stores: { shared: '${store}' }
services:
  origin: { upstreams: ['${origin.url}'] }
middlewares:
  limit:
    rateLimit:
      points: 100000
      per: 1m
      store: shared
      prefix: '${prefix}'
      storeTimeout: 1s
      storeBreaker: { failures: 3, halfOpenAfter: 2s }
  shared-cache:
    cache: { store: shared, storeTimeout: 1s, storeBreaker: { failures: 3, halfOpenAfter: 2s } }
routes:
  - match: { pathPrefix: / }
    middlewares: [limit, shared-cache]
    proxy: { service: origin }
`,
    );
  });
  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    await proxy?.close();
    dir?.cleanup();
  });

  const timed = async () => {
    const started = performance.now();
    const res = await fetch(`${gateway.url}/items`);
    await res.text();
    return { status: res.status, ms: performance.now() - started };
  };
  const check = async (name: string) =>
    (
      (await (await fetch(`${gateway.adminUrl}/readyz`)).json()) as {
        checks?: Record<string, { status: string }>;
      }
    ).checks?.[`middleware:${name}`]?.status;

  it('costs a few requests the store timeout, serves the rest at once, and recovers when Redis answers again', async () => {
    // Warm: both stores answer, nothing is skipped.
    for (let i = 0; i < 5; i++) expect((await timed()).status).toBe(200);
    expect(await check('limit')).toBe('ok');
    expect(await check('shared-cache')).toBe('ok');

    proxy.freeze();
    const during: { status: number; ms: number }[] = [];
    for (let i = 0; i < 40; i++) during.push(await timed());
    expect(new Set(during.map((r) => r.status))).toEqual(new Set([200]));
    // A request that waited for the hung store takes at least its 1 s timeout; the machine's
    // own slowness stays well below that. Without a breaker all 40 wait; with one, the first 3
    // (which open both breakers) and one probe per breaker every 2 s.
    const slow = during.filter((r) => r.ms >= 900).length;
    expect(slow, `${slow} of 40 requests waited for the hung store`).toBeLessThanOrEqual(12);
    expect(await check('limit')).toBe('degraded');
    expect(await check('shared-cache')).toBe('degraded');
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/trellis_store_breaker_open\{middleware="limit"\} 1/);
    await gateway.waitForOutput(/shared store failing or hung/);

    // Straight to Redis (not through the proxy): forget the counters, to see them come back.
    const { Redis } = await import('ioredis');
    const admin = new Redis(redis!);
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    proxy.thaw();
    await waitUntil(
      async () => {
        await timed();
        return (await check('limit')) === 'ok' && (await check('shared-cache')) === 'ok';
      },
      'both breakers to close again',
      20_000,
    );
    await gateway.waitForOutput(/shared store answering again/);
    const after = [];
    for (let i = 0; i < 10; i++) after.push(await timed());
    expect(after.filter((r) => r.ms >= 900).length).toBe(0);
    // Counting happens in Redis again.
    try {
      expect((await admin.keys(`${prefix}*`)).length).toBeGreaterThan(0);
    } finally {
      admin.disconnect();
    }
  });
});
