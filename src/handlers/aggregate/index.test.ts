import { afterEach, describe, expect, it } from 'vitest';
import { type Gateway, type Origin, startAggregate, startOrigin } from './testing/harness.js';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()));
});

async function origin(routes: Parameters<typeof startOrigin>[0]): Promise<Origin> {
  const o = await startOrigin(routes);
  open.push(o);
  return o;
}

async function gateway(...args: Parameters<typeof startAggregate>): Promise<Gateway> {
  const g = await startAggregate(...args);
  open.push(g);
  return g;
}

async function get(url: string, init?: RequestInit) {
  const started = performance.now();
  const res = await fetch(url, init);
  const body = (await res.json()) as Record<string, unknown>;
  return { res, body, ms: performance.now() - started };
}

/** Polls until `check` holds (deadline 5 s). */
async function waitFor(check: () => boolean): Promise<void> {
  const until = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** No retries, so failures are seen as they are. */
const once = (o: Origin) => ({ upstreams: [o.url], retry: { attempts: 1 } });

describe('aggregate handler', () => {
  it('fetches parts in parallel: the response takes about the slowest part, not the sum', async () => {
    const o = await origin({
      '/a': { body: { a: 1 }, delay: 300 },
      '/b': { body: { b: 2 }, delay: 450 },
      '/c': { body: { c: 3 }, delay: 600 },
    });
    const g = await gateway(
      `parts:
  a: { service: s, path: /a }
  b: { service: s, path: /b }
  c: { service: s, path: /c }
`,
      { s: once(o) },
    );
    const { res, body, ms } = await get(`${g.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('trellis-completed')).toBe('true');
    expect(body).toEqual({ a: { a: 1 }, b: { b: 2 }, c: { c: 3 } });
    // Delays wide apart, so a loaded machine's scheduling noise cannot blur parallel and serial.
    expect(ms).toBeGreaterThanOrEqual(595);
    expect(ms).toBeLessThan(1_000); // the sum would be 1,350
  });

  it('starts a dependent part as soon as its input arrived, beside independent ones', async () => {
    const o = await origin({
      '/products/42': { body: { id: 42, name: 'Lamp', brandId: 7 }, delay: 150 },
      '/brands/7': { body: { name: 'Acme' }, delay: 150 },
      '/reviews/42': { body: [{ stars: 5 }], delay: 200 },
    });
    const g = await gateway(
      `parts:
  product: { service: s, path: '/products/{id}' }
  brand: { service: s, path: '/brands/{product.brandId}' }
  reviews: { service: s, path: '/reviews/{id}' }
`,
      { s: once(o) },
      { route: '/page/:id' },
    );
    const { body, ms } = await get(`${g.url}/page/42`);
    expect(body).toEqual({
      product: { id: 42, name: 'Lamp', brandId: 7 },
      brand: { name: 'Acme' },
      reviews: [{ stars: 5 }],
    });
    // product then brand (300 ms) beside reviews (200 ms): about 300, never the sum (500).
    expect(ms).toBeGreaterThanOrEqual(295);
    expect(ms).toBeLessThan(480);
    expect(o.hits.indexOf('/brands/7')).toBeGreaterThan(o.hits.indexOf('/products/42'));
  });

  it('fans out over a list with a concurrency cap and refuses a list wider than maxFanOut', async () => {
    const items = [1, 2, 3, 4, 5, 6].map((n) => ({ productId: `p${n}`, qty: n }));
    const o = await origin({
      '/cart': { body: { items } },
      '/products/': (_req, url) => ({ body: { id: url.pathname.split('/')[2], price: 10 }, delay: 40 }),
    });
    const yaml = (max: number) => `parts:
  cart: { service: s, path: /cart, internal: true }
  products: { service: s, path: '/products/{item}', forEach: 'cart.items[*].productId', concurrency: 2, maxFanOut: ${max} }
`;
    const g = await gateway(yaml(10), { s: once(o) });
    const { body, ms } = await get(`${g.url}/`);
    expect(body).toEqual({ products: items.map((i) => ({ id: i.productId, price: 10 })) });
    expect(o.maxInFlight).toBe(2);
    expect(ms).toBeGreaterThanOrEqual(115); // 6 calls, 2 at a time, 40 ms each

    const narrow = await gateway(yaml(3), { s: once(o) });
    const { res, body: problem } = await get(`${narrow.url}/`);
    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(problem).toMatchObject({
      code: 'TRELLIS_E_AGGREGATE_FANOUT_TOO_WIDE',
      part: 'products',
      detail: 'required part "products" would fan out to 6 calls, more than maxFanOut 3',
    });
  });

  it('composes: groups, merges, allow and deny lists, renames and limits inside nested arrays', async () => {
    const o = await origin({
      '/product': {
        body: {
          data: {
            name: 'Lamp',
            cost: 3,
            images: [
              { url: 'a.jpg', w: 1 },
              { url: 'b.jpg', w: 2 },
              { url: 'c.jpg', w: 3 },
            ],
            variants: [
              { sku: 'L1', internal: { supplier: 'x' }, color: 'red' },
              { sku: 'L2', internal: { supplier: 'y' }, color: 'blue' },
            ],
          },
        },
      },
      '/stock': { body: { inStock: true, warehouse: 'w1' } },
    });
    const g = await gateway(
      `parts:
  product:
    service: s
    path: /product
    target: data
    allow: [name, 'images[*].url', variants]
    deny: ['variants[*].internal']
    rename: { 'variants[*].sku': 'variants[*].id' }
    limit: { images: 2 }
    group: page.product
  stock: { service: s, path: /stock, merge: true, deny: [warehouse] }
shape:
  rename: { inStock: available }
`,
      { s: once(o) },
    );
    const { body } = await get(`${g.url}/`);
    expect(body).toEqual({
      page: {
        product: {
          name: 'Lamp',
          images: [{ url: 'a.jpg' }, { url: 'b.jpg' }],
          variants: [
            { id: 'L1', color: 'red' },
            { id: 'L2', color: 'blue' },
          ],
        },
      },
      available: true,
    });
  });

  it('fails the request when a required part fails, naming the part, and passes a 4xx on', async () => {
    const o = await origin({
      '/down': { status: 503, body: { secret: 'stack trace' } },
      '/ok': { body: { ok: true } },
    });
    const g = await gateway(
      `parts:
  ok: { service: s, path: /ok }
  catalog: { service: s, path: '/{what}' }
`,
      { s: once(o) },
      { route: '/:what' },
    );
    const down = await get(`${g.url}/down`);
    expect(down.res.status).toBe(502);
    expect(down.body).toMatchObject({
      code: 'TRELLIS_E_AGGREGATE_PART_FAILED',
      part: 'catalog',
      reason: 'status',
      detail: 'required part "catalog" answered 503',
    });
    expect(JSON.stringify(down.body)).not.toContain('stack trace');

    const missing = await get(`${g.url}/nope`);
    expect(missing.res.status).toBe(404);
    expect(missing.body).toMatchObject({ code: 'TRELLIS_E_AGGREGATE_PART_REJECTED', part: 'catalog' });
  });

  it('answers 200 with trellis-completed: false and _missing when optional parts fail', async () => {
    const o = await origin({
      '/product': { body: { name: 'Lamp' } },
      '/reviews': { status: 500 },
      '/big': { body: { blob: 'x'.repeat(500) } },
      '/stream': { body: { blob: 'y'.repeat(500) }, chunked: true },
      '/small-stream': { body: { ok: 1 }, chunked: true },
    });
    const g = await gateway(
      `parts:
  product: { service: s, path: /product }
  reviews: { service: s, path: /reviews, optional: true }
  related: { service: s, path: /big, optional: true, maxBodySize: 100b }
  streamed: { service: s, path: /stream, optional: true, maxBodySize: 100b }
  small: { service: s, path: /small-stream, maxBodySize: 100b }
  brand: { service: s, path: '/brands/{product.brandId}', optional: true }
`,
      { s: once(o) },
    );
    const { res, body } = await get(`${g.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('trellis-completed')).toBe('false');
    // A degraded answer is never cacheable (no middleware on this route: the handler's own head).
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(body.product).toEqual({ name: 'Lamp' });
    expect(body.small).toEqual({ ok: 1 });
    expect(body._missing).toEqual(
      expect.arrayContaining([
        { part: 'reviews', reason: 'status', status: 500 },
        { part: 'related', reason: 'tooLarge' },
        { part: 'streamed', reason: 'tooLarge' },
        { part: 'brand', reason: 'missingInput' },
      ]),
    );
    expect((body._missing as unknown[]).length).toBe(4);
  });

  it('times parts out: a required one answers 504 at its deadline, an optional one is left out', async () => {
    const o = await origin({
      '/fast': { body: { fast: true } },
      '/slow': { body: { slow: true }, delay: 1000 },
    });
    const required = await gateway(
      `parts:
  fast: { service: s, path: /fast }
  slow: { service: s, path: /slow, timeout: 100ms }
`,
      { s: once(o) },
    );
    const r = await get(`${required.url}/`);
    expect(r.res.status).toBe(504);
    expect(r.body).toMatchObject({ code: 'TRELLIS_E_AGGREGATE_PART_TIMEOUT', part: 'slow' });
    expect(r.ms).toBeLessThan(600);

    const optional = await gateway(
      `partTimeout: 100ms
parts:
  fast: { service: s, path: /fast }
  slow: { service: s, path: /slow, optional: true }
`,
      { s: once(o) },
    );
    const p = await get(`${optional.url}/`);
    expect(p.res.status).toBe(200);
    expect(p.body).toEqual({ fast: { fast: true }, _missing: [{ part: 'slow', reason: 'timeout' }] });
    expect(p.ms).toBeLessThan(600);
    const metrics = await optional.metrics.getSingleMetricAsString('trellis_aggregate_part_failures_total');
    expect(metrics).toContain(
      'trellis_aggregate_part_failures_total{route="test",part="slow",reason="timeout"} 1',
    );
  });

  it('cancels the calls of a client that left, without counting them against the upstream', async () => {
    const o = await origin({ '/slow': { body: {}, delay: 300 } });
    const g = await gateway(`parts:\n  slow: { service: s, path: /slow }\n`, { s: once(o) });
    const ac = new AbortController();
    const request = fetch(`${g.url}/`, { signal: ac.signal }).catch(() => undefined);
    await waitFor(() => o.hits.length === 1);
    ac.abort();
    await request;
    const upstream = () => g.pools.get('s')!.status().upstreams[0]!;
    await waitFor(() => upstream().inFlight === 0);
    expect(upstream().consecutiveFailures).toBe(0);
  });

  it("retries a safe part on another upstream by the service's policy, never the unsafe step", async () => {
    const down = await origin({ '/': { status: 503 } });
    const up = await origin({ '/': { body: { ok: true } } });
    const service = {
      upstreams: [down.url, up.url],
      retry: { attempts: 2, backoff: { base: '1ms', max: '2ms' } },
    };
    const g = await gateway(
      `allowUnsafe: true
parts:
  read: { service: s, path: /read }
  write: { service: s, path: /write, method: PUT, optional: true }
`,
      { s: service },
    );
    for (let i = 0; i < 4; i++) {
      const { body } = await get(`${g.url}/`);
      expect(body.read).toEqual({ ok: true });
      // A PUT that met the failing upstream is reported missing, never sent twice (though idempotent).
      if (body._missing) expect(body._missing).toEqual([{ part: 'write', reason: 'status', status: 503 }]);
    }
    expect(down.hits.filter((h) => h === '/read').length).toBeGreaterThan(0);
    const writes =
      down.hits.filter((h) => h === '/write').length + up.hits.filter((h) => h === '/write').length;
    expect(writes).toBe(4);
  });

  it("stops waiting for a retry's backoff at the part's deadline", async () => {
    const down = await origin({ '/': { status: 503 } });
    const service = { upstreams: [down.url], retry: { attempts: 10, backoff: { base: '5s', max: '5s' } } };
    const g = await gateway(`parts:\n  p: { service: s, path: /p, timeout: 150ms }\n`, { s: service });
    const { res, body, ms } = await get(`${g.url}/`);
    expect(res.status).toBe(504);
    expect(body).toMatchObject({ code: 'TRELLIS_E_AGGREGATE_PART_TIMEOUT', part: 'p' });
    expect(ms).toBeLessThan(2000);
  });

  it('renders templates from params, query, headers and JWT claims, and encodes path values', async () => {
    const o = await origin({ '/': { body: {} } });
    const g = await gateway(
      `parts:
  user:
    service: s
    path: '/users/{jwt.sub}/items/{id}'
    query: { lang: '{header.accept-language}', page: '{query.page}', absent: '{query.nothing}' }
    headers: { x-tenant: '{jwt.tenant}' }
    forwardHeaders: [authorization]
`,
      { s: once(o) },
      { route: '/x/:id', jwt: { sub: 'u/1', tenant: 't9' } },
    );
    await get(`${g.url}/x/a%20b?page=2`, { headers: { 'accept-language': 'fr', authorization: 'Bearer k' } });
    expect(o.hits).toEqual(['/users/u%2F1/items/a%20b?lang=fr&page=2']);
    expect(o.headers[0]).toMatchObject({
      'x-tenant': 't9',
      authorization: 'Bearer k',
      accept: 'application/json',
    });
    expect(o.headers[0]!['x-request-id']).toMatch(/.+/);
  });

  it('refuses "." and ".." as path values so a response cannot steer the upstream path', async () => {
    const o = await origin({ '/ref': { body: { next: '..' } }, '/': { body: { leaked: true } } });
    const g = await gateway(
      `parts:
  ref: { service: s, path: /ref }
  next: { service: s, path: '/items/{ref.next}', optional: true }
`,
      { s: once(o) },
    );
    const { body } = await get(`${g.url}/`);
    expect(body._missing).toEqual([{ part: 'next', reason: 'missingInput' }]);
    expect(o.hits).toEqual(['/ref']);
  });

  it('caches a part by its resolved URL for its TTL', async () => {
    const o = await origin({ '/products/': (_r, url) => ({ body: { path: url.pathname } }) });
    const g = await gateway(
      `parts:
  product: { service: s, path: '/products/{id}', cache: { ttl: 60s } }
`,
      { s: once(o) },
      { route: '/p/:id' },
    );
    await get(`${g.url}/p/1`);
    await get(`${g.url}/p/1`);
    const { body } = await get(`${g.url}/p/2`);
    expect(body).toEqual({ product: { path: '/products/2' } });
    expect(o.hits).toEqual(['/products/1', '/products/2']);
    const metrics = await g.metrics.getSingleMetricAsString('trellis_aggregate_part_duration_seconds');
    expect(metrics).toContain(
      'trellis_aggregate_part_duration_seconds_count{route="test",part="product",outcome="cached"} 1',
    );
  });

  it('runs the unsafe step last, with the client body, and never when a required part failed', async () => {
    let orderBody = '';
    const o = await origin({
      '/cart/ok': { body: { total: 5 }, delay: 50 },
      '/cart/bad': { status: 503 },
      '/orders': async (req) => {
        orderBody = req.headers['content-type'] ?? '';
        return { status: 201, body: { orderId: 'o1' } };
      },
    });
    const g = await gateway(
      `allowUnsafe: true
parts:
  cart: { service: s, path: '/cart/{which}' }
  order: { service: s, path: /orders, method: POST, forwardBody: true }
`,
      { s: once(o) },
      { route: '/:which' },
    );
    const ok = await get(`${g.url}/ok`, {
      method: 'POST',
      body: '{"pay":1}',
      headers: { 'content-type': 'application/json' },
    });
    expect(ok.body).toEqual({ cart: { total: 5 }, order: { orderId: 'o1' } });
    expect(orderBody).toBe('application/json');
    expect(o.hits).toEqual(['/cart/ok', '/orders']);

    const bad = await get(`${g.url}/bad`, { method: 'POST', body: '{}' });
    expect(bad.res.status).toBe(502);
    expect(o.hits.filter((h) => h === '/orders')).toHaveLength(1);
  });
});
