import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../../../src/handlers/aggregate/testing/harness.js';
import { type GatewayProcess, startGatewayCli, tempDir } from '../support/index.js';

// Backends for Frontends through the real `trellis gateway`: one set of services, a web frontend
// on a path prefix and a mobile frontend on its own listener, each with its own middlewares.
describe('frontends', () => {
  const tmp = tempDir('trellis-bff-');
  let origin: Origin;
  let gateway: GatewayProcess;
  let web: string;
  let mobile: string;

  beforeAll(async () => {
    origin = await startOrigin({
      '/products/': (_req, url) => ({
        body: {
          id: url.pathname.split('/')[2],
          name: 'Lamp',
          description: 'A long text only the web page shows',
          images: ['1.jpg', '2.jpg', '3.jpg', '4.jpg'],
        },
      }),
      '/reviews/': { body: { average: 4.5, list: [{ stars: 4 }, { stars: 5 }] }, delay: 200 },
    });
    gateway = await startGatewayCli(
      tmp.write('gateway.yaml', ''),
      `listen: { port: 0 }
services:
  catalog: { upstreams: ['${origin.url}'] }
middlewares:
  web-limit: { rateLimit: { points: 1000, per: 1m, key: ip } }
  mobile-limit: { rateLimit: { points: 3, per: 1m, key: ip } }
  web-headers: { headers: { response: { set: { x-frontend: web } } } }
  mobile-headers: { headers: { response: { set: { x-frontend: mobile, x-mobile-only: 'yes' } } } }
frontends:
  web:
    pathPrefix: /web
    middlewares: [web-limit, web-headers]
    routes:
      - name: web-page
        match: { path: /products/:id }
        aggregate:
          parts:
            product: { service: catalog, path: '/products/{id}' }
            reviews: { service: catalog, path: '/reviews/{id}', optional: true, timeout: 2s }
  mobile:
    listen: { port: 0 }
    middlewares: [mobile-limit, mobile-headers]
    routes:
      - name: mobile-page
        match: { path: /products/:id }
        aggregate:
          parts:
            product: { service: catalog, path: '/products/{id}', allow: [id, name, images], limit: { images: 2 }, merge: true }
            reviews: { service: catalog, path: '/reviews/{id}', optional: true, timeout: 50ms, allow: [average] }
`,
    );
    web = `${gateway.url}/web`;
    mobile = `http://127.0.0.1:${gateway.ports.mobile}`;
  });

  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    tmp.cleanup();
  });

  it('shapes the same page in full for web and trimmed, with a tighter timeout, for mobile', async () => {
    const w = await fetch(`${web}/products/1`);
    expect(w.headers.get('trellis-completed')).toBe('true');
    expect(await w.json()).toEqual({
      product: {
        id: '1',
        name: 'Lamp',
        description: 'A long text only the web page shows',
        images: ['1.jpg', '2.jpg', '3.jpg', '4.jpg'],
      },
      reviews: { average: 4.5, list: [{ stars: 4 }, { stars: 5 }] },
    });
    const m = await fetch(`${mobile}/products/1`);
    expect(m.headers.get('trellis-completed')).toBe('false');
    expect(await m.json()).toEqual({
      id: '1',
      name: 'Lamp',
      images: ['1.jpg', '2.jpg'],
      _missing: [{ part: 'reviews', reason: 'timeout' }],
    });
  });

  it("never applies a frontend's middlewares to another frontend's routes", async () => {
    const w = await fetch(`${web}/products/2`);
    expect(w.headers.get('x-frontend')).toBe('web');
    expect(w.headers.get('x-mobile-only')).toBeNull();
    const m = await fetch(`${mobile}/products/2`);
    expect(m.headers.get('x-frontend')).toBe('mobile');
    // The web frontend's path prefix does not exist on the mobile listener, nor the reverse.
    expect((await fetch(`${mobile}/web/products/2`)).status).toBe(404);
    expect((await fetch(`${web.replace('/web', '')}/products/2`)).status).toBe(404);
  });

  it("exhausts the mobile rate limit without touching the web frontend's", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await fetch(`${mobile}/products/3`)).status);
    expect(statuses.at(-1)).toBe(429);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < 5; i++) expect((await fetch(`${web}/products/3`)).status).toBe(200);
  });

  it('/admin/routes shows routes grouped by frontend, each with its middleware order', async () => {
    const view = (await (await fetch(`${gateway.adminUrl}/admin/routes`)).json()) as {
      frontends: Record<string, { name: string; middlewares: string[]; handler: string }[]>;
    };
    expect(Object.keys(view.frontends).sort()).toEqual(['mobile', 'web']);
    expect(view.frontends.web).toEqual([
      expect.objectContaining({
        name: 'web-page',
        handler: 'aggregate',
        middlewares: ['web-limit', 'web-headers'],
      }),
    ]);
    expect(view.frontends.mobile).toEqual([
      expect.objectContaining({
        name: 'mobile-page',
        handler: 'aggregate',
        middlewares: ['mobile-limit', 'mobile-headers'],
      }),
    ]);
  });
});
