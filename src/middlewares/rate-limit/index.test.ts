import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { rateLimitMiddleware } from './index.js';

let srv: ChainServer | undefined;
let reached = 0;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
  reached = 0;
});

async function start(options: Record<string, unknown>) {
  const mw = await createMiddleware(rateLimitMiddleware, options, { name: randomUUID() });
  srv = await serveChain([mw], (ctx) => {
    reached++;
    ctx.res.end('ok');
  });
  return srv.url;
}

async function statuses(url: string, n: number, headers: Record<string, string> = {}) {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await request(url, { headers });
    await r.body.text();
    out.push(r.statusCode);
  }
  return out;
}

describe('rateLimit (memory)', () => {
  it('fixedWindow: exactly `points` pass, then 429 problem details with RateLimit-* and Retry-After', async () => {
    const url = await start({ points: 3, per: '1m', algorithm: 'fixedWindow' });
    const first = await request(url);
    await first.body.text();
    expect(first.headers['ratelimit-limit']).toBe('3');
    expect(first.headers['ratelimit-remaining']).toBe('2');
    expect(first.headers['ratelimit-policy']).toBe('3;w=60');
    expect(await statuses(url, 2)).toEqual([200, 200]);
    const refused = await request(url);
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['content-type']).toBe('application/problem+json');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(refused.headers['ratelimit-remaining']).toBe('0');
    expect(((await refused.body.json()) as { code: string }).code).toBe('TRELLIS_E_RATE_LIMITED');
    expect(reached).toBe(3);
  });

  it('slidingWindow (the default) and tokenBucket with a burst allowance', async () => {
    const sliding = await start({ points: 4, per: '1m' });
    expect(await statuses(sliding, 6)).toEqual([200, 200, 200, 200, 429, 429]);
    await srv!.close();
    const bucket = await start({ points: 2, per: '1m', algorithm: 'tokenBucket', burst: 3 });
    expect(await statuses(bucket, 7)).toEqual([200, 200, 200, 200, 200, 429, 429]);
  });

  it('slidingWindow weighs the previous window by its overlap, across window rolls', async () => {
    // Only Date is faked: the servers and the limiter's expiry timers stay real.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const minute = 60_000;
      const start0 = Math.ceil(Date.now() / minute + 1) * minute;
      vi.setSystemTime(start0 + 1000);
      const url = await start({ points: 4, per: '1m' });
      expect(await statuses(url, 4)).toEqual([200, 200, 200, 200]);
      // 10% into the next window: 4 x 0.9 + 1 > 4, for the first request and the ones after.
      vi.setSystemTime(start0 + minute + 6000);
      expect(await statuses(url, 2)).toEqual([429, 429]);
      // Half way into the window after: the previous one holds 2 (refusals count), weighted 0.5.
      vi.setSystemTime(start0 + 2 * minute + 30_000);
      expect(await statuses(url, 4)).toEqual([200, 200, 200, 429]);
      expect(reached).toBe(7);
    } finally {
      vi.useRealTimers();
    }
  });

  it('keys by header: each client has its own budget', async () => {
    const url = await start({ points: 2, per: '1m', key: { header: 'x-client' } });
    expect(await statuses(url, 3, { 'x-client': 'a' })).toEqual([200, 200, 429]);
    expect(await statuses(url, 2, { 'x-client': 'b' })).toEqual([200, 200]);
  });

  it('holds when hammered from many connections at once', async () => {
    const url = await start({ points: 50, per: '1m', algorithm: 'fixedWindow' });
    const agent = new Agent({ connections: 40, pipelining: 1 });
    const results = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const r = await request(url, { dispatcher: agent });
        await r.body.text();
        return r.statusCode;
      }),
    );
    await agent.close();
    expect(results.filter((s) => s === 200).length).toBe(50);
    expect(results.filter((s) => s === 429).length).toBe(150);
    expect(reached).toBe(50);
  });

  it('refuses bad options and unknown stores', async () => {
    expect(() => rateLimitMiddleware.options.parse({ points: 1, per: '10ms' })).toThrow(/at least 1s/);
    expect(() => rateLimitMiddleware.options.parse({ points: 1, per: '1s', burst: 2 })).toThrow(
      /tokenBucket/,
    );
    expect(() =>
      rateLimitMiddleware.options.parse({ points: 1, per: '1s', onStoreError: 'maybe' }),
    ).toThrow();
    await expect(
      createMiddleware(rateLimitMiddleware, { points: 1, per: '1s', store: 'shared' }),
    ).rejects.toThrow(/unknown store "shared"/);
    await expect(
      createMiddleware(
        rateLimitMiddleware,
        { points: 1, per: '1s', store: 'pg' },
        { stores: { pg: 'postgres://x' } },
      ),
    ).rejects.toThrow(/redis/);
  });
});
