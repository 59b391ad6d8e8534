import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { messageQueueConformance } from './conformance.js';
import { openMessageQueue } from './index.js';
import { startTcpProxy } from './testing/tcp-proxy.js';

const url = await serviceUrl('redis');
// Every key this file writes carries this prefix, so the run can delete exactly its own keys.
const prefix = `tq${randomBytes(4).toString('hex')}`;

describe.skipIf(!url)('redis', () => {
  const server = new URL(url ?? 'redis://127.0.0.1:6379');
  messageQueueConformance({
    name: 'redis',
    url: () => `${url}?prefix=${prefix}`,
    outage: async () => {
      const proxy = await startTcpProxy(server.hostname, Number(server.port || 6379));
      return { ...proxy, url: `redis://${proxy.address}${server.pathname}?prefix=${prefix}` };
    },
    cleanup: async () => {
      const redis = new Redis(url!);
      const keys: string[] = [];
      for await (const batch of redis.scanStream({ match: `${prefix}:*`, count: 500 })) keys.push(...batch);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    },
  });
});

describe.skipIf(!url)('redis queue retention', () => {
  it('trims a topic stream once every group consumed it, and a stopped consumer leaves its group', async () => {
    const queue = await openMessageQueue(`${url}?prefix=${prefix}&sweep=50ms`);
    const redis = new Redis(url!);
    try {
      const stream = `${prefix}:q:{trim}`;
      for (let i = 0; i < 10; i++) await queue.publish('trim', String(i));
      const got: string[] = [];
      const c = await queue.consume('trim', 'g', async (d) => {
        got.push(d.payload);
      });
      let length = -1;
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && (got.length < 10 || length !== 0)) {
        length = await redis.xlen(stream);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(got).toHaveLength(10);
      expect(length).toBe(0);
      await c.stop();
      expect(await redis.xinfo('CONSUMERS', stream, 'g')).toEqual([]);
    } finally {
      await queue.close();
      const keys = await redis.keys(`${prefix}:q:{trim}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    }
  });
});

describe.skipIf(!url)('redis queue credentials', () => {
  it('refused credentials give TRELLIS_E_STORE_UNAVAILABLE without the password', async () => {
    const server = new URL(url!);
    const wrong = `redis://nobody:not-the-password@${server.host}${server.pathname}`;
    const err = await openMessageQueue(wrong).then(
      async (q) => {
        await q.close();
        return undefined;
      },
      (e: unknown) => e as Error & { code?: string },
    );
    expect(err?.code).toBe('TRELLIS_E_STORE_UNAVAILABLE');
    expect(err?.message).toMatch(/WRONGPASS|auth/i);
    expect(err?.message).not.toContain('not-the-password');
  });
});

describe.skipIf(!url)('redis queue batched publish', () => {
  it('publishes of one turn keep their order, with and without ids, and a repeated id inside the batch is a duplicate', async () => {
    const queue = await openMessageQueue(`${url}?prefix=${prefix}`);
    const redis = new Redis(url!);
    try {
      // One turn: a plain publish first (a direct XADD), then ids and plain ones mixed (one batch).
      const sent = await Promise.all([
        queue.publish('batch', 'a'),
        queue.publish('batch', 'b', { id: 'x1', key: 'k', headers: { h: '1' } }),
        queue.publish('batch', 'c'),
        queue.publish('batch', 'd', { id: 'x1' }),
        queue.publish('batch', 'e', { id: 'x2' }),
      ]);
      expect(sent.map((r) => r.duplicate)).toEqual([false, false, false, true, false]);
      expect(sent[1]!.id).toBe('x1');
      const got: { payload: string; id: string; key?: string; headers: Record<string, string> }[] = [];
      const c = await queue.consume('batch', 'g', async (d) => {
        got.push({ payload: d.payload, id: d.id, ...(d.key ? { key: d.key } : {}), headers: d.headers });
      });
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && got.length < 4) await new Promise((r) => setTimeout(r, 20));
      await c.stop();
      expect(got.map((g) => g.payload)).toEqual(['a', 'b', 'c', 'e']);
      expect(got[1]).toMatchObject({ id: 'x1', key: 'k', headers: { h: '1' } });
      expect(got[3]!.id).toBe('x2');
    } finally {
      await queue.close();
      const keys = await redis.keys(`${prefix}:q:{batch}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    }
  });
});
