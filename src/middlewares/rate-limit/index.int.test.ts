import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import type { MiddlewareInstance } from '../types.js';
import { rateLimitMiddleware } from './index.js';

const redis = await serviceUrl('redis');
// Nothing listens here: a Redis that is "down" without touching the shared one.
const DOWN = 'redis://127.0.0.1:6390';

const servers: ChainServer[] = [];
const middlewares: MiddlewareInstance[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(middlewares.splice(0).map((m) => m.close?.()));
});

async function gateway(options: Record<string, unknown>, name: string) {
  const mw = await createMiddleware(rateLimitMiddleware, options, {
    name,
    stores: { shared: redis ?? DOWN },
  });
  middlewares.push(mw);
  let reached = 0;
  const srv = await serveChain([mw], (ctx) => {
    reached++;
    ctx.res.end('ok');
  });
  servers.push(srv);
  return { url: srv.url, reached: () => reached };
}

async function hammer(urls: string[], total: number) {
  const agent = new Agent({ connections: 20 });
  const codes = await Promise.all(
    Array.from({ length: total }, async (_, i) => {
      const r = await request(urls[i % urls.length]!, { dispatcher: agent });
      await r.body.text();
      return r.statusCode;
    }),
  );
  await agent.close();
  return codes;
}

describe.skipIf(!redis)('rateLimit shared in Redis', () => {
  it('two gateway instances share one budget (fixedWindow: exact; slidingWindow: within 5%)', async () => {
    for (const algorithm of ['fixedWindow', 'slidingWindow']) {
      const name = `rl-${randomUUID()}`;
      const opts = { points: 100, per: '1m', algorithm, store: 'shared', storeTimeout: '3s' };
      const a = await gateway(opts, name);
      const b = await gateway(opts, name);
      const codes = await hammer([a.url, b.url], 300);
      const passed = codes.filter((c) => c === 200).length;
      expect(Math.abs(passed - 100), algorithm).toBeLessThanOrEqual(5);
      expect(codes.filter((c) => c !== 200 && c !== 429)).toEqual([]);
      expect(a.reached() + b.reached()).toBe(passed);
      expect(a.reached()).toBeGreaterThan(0);
      expect(b.reached()).toBeGreaterThan(0);
    }
  });
});

describe('rateLimit with its Redis unreachable', () => {
  const opts = { points: 3, per: '1m', algorithm: 'fixedWindow', store: DOWN, storeTimeout: '100ms' };

  it('local (default): limits still hold, counted in this process', async () => {
    const g = await gateway(opts, `rl-${randomUUID()}`);
    const codes = await hammer([g.url], 6);
    expect(codes.sort()).toEqual([200, 200, 200, 429, 429, 429]);
  });

  it('open: lets every request through', async () => {
    const g = await gateway({ ...opts, onStoreError: 'open' }, `rl-${randomUUID()}`);
    expect(await hammer([g.url], 6)).toEqual([200, 200, 200, 200, 200, 200]);
  });

  it('closed: refuses with 503 problem details and nothing reaches the service', async () => {
    const g = await gateway({ ...opts, onStoreError: 'closed' }, `rl-${randomUUID()}`);
    const r = await request(g.url);
    expect(r.statusCode).toBe(503);
    expect(((await r.body.json()) as { code: string }).code).toBe('TRELLIS_E_RATE_LIMIT_UNAVAILABLE');
    expect(g.reached()).toBe(0);
  });
});
