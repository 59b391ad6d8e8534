import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import type { MiddlewareInstance } from '../types.js';
import { cacheMiddleware } from './index.js';

const redis = await serviceUrl('redis');
const servers: ChainServer[] = [];
const mws: MiddlewareInstance[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(mws.map((m) => m.close?.()));
});

describe.skipIf(!redis)('cache shared in Redis', () => {
  it('a response stored by one gateway is a hit on another', async () => {
    const name = `cache-${randomUUID()}`;
    let originHits = 0;
    const gateway = async () => {
      const mw = await createMiddleware(
        cacheMiddleware,
        { store: 'shared' },
        { name, stores: { shared: redis! } },
      );
      mws.push(mw);
      const srv = await serveChain([mw], (ctx) => {
        originHits++;
        ctx.res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'cache-control': 'max-age=60',
          vary: 'x-v',
        });
        ctx.res.end(Buffer.from([0, 1, 2, 255]));
      });
      servers.push(srv);
      return srv.url;
    };
    const a = await gateway();
    const b = await gateway();
    const path = `/item-${randomUUID()}`;
    const first = await request(`${a}${path}`, { headers: { 'x-v': '1', host: 'shop.test' } });
    expect(Buffer.from(await first.body.arrayBuffer())).toEqual(Buffer.from([0, 1, 2, 255]));
    const second = await request(`${b}${path}`, { headers: { 'x-v': '1', host: 'shop.test' } });
    expect(second.headers['cache-status']).toBe('trellis; hit');
    expect(Buffer.from(await second.body.arrayBuffer())).toEqual(Buffer.from([0, 1, 2, 255]));
    const other = await request(`${b}${path}`, { headers: { 'x-v': '2', host: 'shop.test' } });
    await other.body.arrayBuffer();
    expect(other.headers['cache-status']).toContain('fwd=miss');
    expect(originHits).toBe(2);
  });
});
