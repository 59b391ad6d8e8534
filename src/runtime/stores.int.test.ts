import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway } from '../gateway/gateway.js';
import { serviceUrl } from '../testing/services.js';

const redis = await serviceUrl('redis');

// Every user of a named store shares one connection per process: two rate limits, a cache and
// an aggregate part cache on `shared` are one Redis client, counted by name in CLIENT LIST.
describe.skipIf(!redis)('stores: opened once per process', () => {
  const name = `trellis-rt-${randomUUID().slice(0, 8)}`;
  let admin: Redis;
  let origin: Server;
  let originUrl: string;
  let gw: Gateway | undefined;

  const connections = async () => {
    const list = (await admin.client('LIST')) as string;
    return list.split('\n').filter((line) => line.includes(` name=${name} `)).length;
  };
  const file = (limit: number) => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
stores: { shared: '${redis}?name=${name}' }
services:
  origin: { upstreams: ['${originUrl}'] }
middlewares:
  per-ip: { rateLimit: { points: ${limit}, per: 1m, key: ip, store: shared, prefix: '${name}:a:' } }
  per-route: { rateLimit: { points: ${limit * 10}, per: 1m, key: ip, store: shared, prefix: '${name}:b:' } }
  edge: { cache: { store: shared } }
routes:
  - match: { path: /cached }
    middlewares: [per-ip, per-route, edge]
    proxy: { service: origin }
  - match: { path: /agg/:id }
    aggregate:
      parts:
        product: { service: origin, path: '/item/{id}', cache: { ttl: 30s, store: shared } }
`;

  beforeAll(async () => {
    admin = new Redis(redis!);
    origin = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
      res.end(JSON.stringify({ path: req.url }));
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await gw?.stop(1_000);
    admin.disconnect();
    await new Promise((r) => origin.close(r));
  });

  it('opens the shared store once, keeps it across a reload, reports it at /readyz, closes it on stop', async () => {
    gw = await startGateway({ text: file(100), label: 'gw.yaml' });
    const port = gw.ports.main;
    for (const path of ['/cached', '/cached', '/agg/1', '/agg/1']) {
      expect((await fetch(`http://127.0.0.1:${port}${path}`)).status).toBe(200);
    }
    expect(await connections()).toBe(1);
    const ready = (await (await fetch(`http://127.0.0.1:${gw.ports.admin}/readyz`)).json()) as {
      stores: { name: string; ok: boolean; backend: string }[];
    };
    expect(ready.stores).toEqual([expect.objectContaining({ name: 'shared', ok: true, backend: 'redis' })]);
    // A reload compiles new middlewares on the same store: still one connection.
    expect((await gw.applyConfig(file(200), 'gw.yaml')).ok).toBe(true);
    expect((await fetch(`http://127.0.0.1:${port}/cached`)).headers.get('ratelimit-limit')).toBe('2000');
    expect(await connections()).toBe(1);
    await gw.stop(1_000);
    gw = undefined;
    const deadline = Date.now() + 5_000;
    while ((await connections()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await connections()).toBe(0);
  });
});
