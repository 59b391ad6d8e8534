import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { type Gateway, type Origin, startAggregate, startOrigin } from './testing/harness.js';

const redis = await serviceUrl('redis');

// Per-part caching in Redis: two gateways (two handler instances) share one cache.
describe.skipIf(!redis)('aggregate part cache in Redis', () => {
  let origin: Origin;
  const gateways: Gateway[] = [];

  beforeAll(async () => {
    origin = await startOrigin({ '/products/': (_req, url) => ({ body: { path: url.pathname } }) });
    const yaml = `parts:
  product: { service: s, path: '/products/{id}', cache: { ttl: 30s, store: cache } }
`;
    for (let i = 0; i < 2; i++) {
      gateways.push(
        await startAggregate(
          yaml,
          { s: { upstreams: [origin.url] } },
          { route: '/p/:id', stores: { cache: redis! } },
        ),
      );
    }
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await origin?.close();
  });

  it('serves a second gateway from what the first one fetched', async () => {
    const id = randomUUID();
    const first = await (await fetch(`${gateways[0]!.url}/p/${id}`)).json();
    // The store write happens in the background: wait until it landed.
    const client = new Redis(redis!);
    try {
      const until = Date.now() + 5000;
      while ((await client.keys(`trellis:aggregate:test:product:*${id}*`)).length === 0) {
        if (Date.now() > until) throw new Error('the answer never reached Redis');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      client.disconnect();
    }
    const second = await (await fetch(`${gateways[1]!.url}/p/${id}`)).json();
    expect(first).toEqual({ product: { path: `/products/${id}` } });
    expect(second).toEqual(first);
    expect(origin.hits.filter((h) => h.includes(id))).toHaveLength(1);
  });
});
