import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../../../src/handlers/aggregate/testing/harness.js';
import { type GatewayProcess, startGatewayCli, tempDir } from '../support/index.js';

// An aggregate missing an optional part is a degraded page: whatever caching headers the route's
// middlewares give pages, the degraded one must never be kept like a whole one.
describe('trellis gateway: an incomplete aggregate is never cacheable', () => {
  const tmp = tempDir('trellis-incomplete-');
  let origin: Origin;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    origin = await startOrigin({
      '/products/': { body: { name: 'lamp' } },
      '/reviews/': { status: 503, body: { down: true } },
      '/stock/': { body: { available: 3 } },
    });
    gateway = await startGatewayCli(
      tmp.write('gateway.yaml', ''),
      `listen: { port: 0 }
services:
  shop: { upstreams: ['${origin.url}'], retry: { attempts: 1 } }
middlewares:
  page-caching:
    headers: { response: { set: { cache-control: 'private, max-age=30', expires: 'Thu, 01 Jan 2037 00:00:00 GMT' } } }
  shared-cache: { cache: {} }
routes:
  - name: mobile
    match: { path: /mobile/:id }
    middlewares: [page-caching]
    aggregate:
      parts:
        product: { service: shop, path: '/products/{id}' }
        reviews: { service: shop, path: '/reviews/{id}', optional: true }
  - name: whole
    match: { path: /whole/:id }
    middlewares: [page-caching]
    aggregate:
      parts:
        product: { service: shop, path: '/products/{id}' }
        stock: { service: shop, path: '/stock/{id}', optional: true }
  - name: short
    match: { path: /short/:id }
    middlewares: [shared-cache, page-caching]
    aggregate:
      incompleteMaxAge: 5s
      parts:
        product: { service: shop, path: '/products/{id}' }
        reviews: { service: shop, path: '/reviews/{id}', optional: true }
`,
    );
  });

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    tmp.cleanup();
  });

  it('answers no-store (and no Expires) when a part is missing, despite the route setting max-age=30', async () => {
    const res = await fetch(`${gateway.url}/mobile/4`);
    expect(res.status).toBe(200);
    expect(res.headers.get('trellis-completed')).toBe('false');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('expires')).toBeNull();
  });

  it('leaves a complete answer with the route headers', async () => {
    const res = await fetch(`${gateway.url}/whole/4`);
    expect(res.headers.get('trellis-completed')).toBe('true');
    expect(res.headers.get('cache-control')).toBe('private, max-age=30');
  });

  it('incompleteMaxAge gives the degraded page a short lifetime, and the shared cache keeps it no longer', async () => {
    const res = await fetch(`${gateway.url}/short/4`);
    expect(res.headers.get('trellis-completed')).toBe('false');
    expect(res.headers.get('cache-control')).toBe('max-age=5');
    const before = origin.hits.length;
    const again = await fetch(`${gateway.url}/short/4`);
    await again.text();
    // Within the 5 s the cache answers it; the origin saw nothing new.
    expect(again.headers.get('cache-status')).toMatch(/hit/);
    expect(origin.hits.length).toBe(before);
  });
});
