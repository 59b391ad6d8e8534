import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../../../src/handlers/aggregate/testing/harness.js';
import { type GatewayProcess, runCli, startGatewayCli, tempDir } from '../support/index.js';

// Gateway Aggregation through the real `trellis gateway`, against origins with known delays.
describe('aggregate routes through trellis gateway', () => {
  const tmp = tempDir('trellis-agg-');
  let origin: Origin;
  let gateway: GatewayProcess;
  let base: string;

  beforeAll(async () => {
    origin = await startOrigin({
      '/products/': (_req, url) => ({ body: { id: url.pathname.split('/')[2], brandId: 'b7' }, delay: 200 }),
      '/brands/': { body: { name: 'Acme' }, delay: 100 },
      '/stock/': { body: { available: 3 }, delay: 300 },
      '/reviews/': { status: 503, body: { internal: 'do not leak' } },
    });
    gateway = await startGatewayCli(
      tmp.write('gateway.yaml', ''),
      `listen: { port: 0 }
services:
  shop: { upstreams: ['${origin.url}'], retry: { attempts: 1 } }
routes:
  - name: page
    match: { path: /page/:id }
    aggregate:
      parts:
        product: { service: shop, path: '/products/{id}' }
        brand: { service: shop, path: '/brands/{product.brandId}' }
        stock: { service: shop, path: '/stock/{id}', allow: [available] }
  - name: with-reviews
    match: { path: /full/:id }
    aggregate:
      parts:
        product: { service: shop, path: '/products/{id}' }
        reviews: { service: shop, path: '/reviews/{id}', optional: true }
  - name: strict-reviews
    match: { path: /strict/:id }
    aggregate:
      parts:
        reviews: { service: shop, path: '/reviews/{id}' }
`,
    );
    base = gateway.url;
  });

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    tmp.cleanup();
  });

  it('composes parts in parallel: about the slowest chain, not the sum', async () => {
    // The best of three, so one scheduling hiccup on a busy machine does not decide it.
    let ms = Number.POSITIVE_INFINITY;
    let res!: Response;
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      res = await fetch(`${base}/page/42`);
      if (i < 2) await res.arrayBuffer();
      ms = Math.min(ms, performance.now() - started);
    }
    expect(res.status).toBe(200);
    expect(res.headers.get('trellis-completed')).toBe('true');
    expect(await res.json()).toEqual({
      product: { id: '42', brandId: 'b7' },
      brand: { name: 'Acme' },
      stock: { available: 3 },
    });
    // product -> brand is 300 ms, stock 300 ms beside it; one after another would be 600 ms.
    expect(ms).toBeGreaterThanOrEqual(295);
    expect(ms).toBeLessThan(500);
  });

  it('leaves a failed optional part out and says so; a failed required part is a 502 naming it', async () => {
    const partial = await fetch(`${base}/full/1`);
    expect(partial.status).toBe(200);
    expect(partial.headers.get('trellis-completed')).toBe('false');
    expect(await partial.json()).toEqual({
      product: { id: '1', brandId: 'b7' },
      _missing: [{ part: 'reviews', reason: 'status', status: 503 }],
    });

    const failed = await fetch(`${base}/strict/1`);
    expect(failed.status).toBe(502);
    expect(failed.headers.get('content-type')).toBe('application/problem+json');
    const problem = (await failed.json()) as Record<string, unknown>;
    expect(problem).toMatchObject({
      status: 502,
      code: 'TRELLIS_E_AGGREGATE_PART_FAILED',
      part: 'reviews',
      detail: 'required part "reviews" answered 503',
    });
    expect(JSON.stringify(problem)).not.toContain('do not leak');
  });

  it('exports per-part metrics on the admin listener', async () => {
    const text = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    expect(text).toMatch(
      /trellis_aggregate_part_duration_seconds_count\{route="page",part="brand",outcome="ok"\} \d+/,
    );
    expect(text).toContain(
      'trellis_aggregate_part_failures_total{route="with-reviews",part="reviews",reason="status"} 1',
    );
  });

  it('trellis validate refuses an invalid graph with file, line, column and path', async () => {
    const file = tmp.write(
      'bad.yaml',
      `services:
  shop: { upstreams: ['http://127.0.0.1:1'] }
routes:
  - match: { path: /x/:id }
    aggregate:
      parts:
        a: { service: shop, path: '/a/{b.id}' }
        b: { service: shop, path: '/b/{a.id}' }
        c: { service: shpo, path: '/c/{prodct.id}' }
`,
    );
    const r = await runCli(['validate', file]);
    expect(r.code).toBe(1);
    // Sorted by line and column; an unknown service gets a suggestion.
    expect(r.stderr.trim().split('\n')).toEqual([
      `${file}:7:12 routes[0].aggregate.parts.a: parts form a cycle: a -> b -> a: a part can only use parts that do not use it`,
      `${file}:9:23 routes[0].aggregate.parts.c.service: unknown service "shpo" (did you mean "shop"?): define it under services:`,
      `${file}:9:35 routes[0].aggregate.parts.c.path: {prodct.id}: unknown part "prodct"`,
    ]);
  });
});
