import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  type GatewayProcess,
  type Origin,
  rawRequest,
  rawStatus,
  runCli,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
} from '../support/index.js';

// The routing table through the real CLI: precedence, conditions, rewrites, forwarding headers,
// request ids, problem details, and the admin API.
describe('trellis gateway: routing', () => {
  let dir: TempDir;
  let catalog: Origin;
  let orders: Origin;
  let gw: GatewayProcess;

  beforeAll(async () => {
    dir = tempDir();
    catalog = await startOrigin('catalog');
    orders = await startOrigin('orders');
    const gone = await freePort();
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
trustedProxies: [10.0.0.0/8]
services:
  catalog: { upstreams: ['${catalog.url}'] }
  orders: { upstreams: ['${orders.url}'] }
  gone: { upstreams: ['http://127.0.0.1:${gone}'], retry: { attempts: 1 } }
stores: { shared: 'redis://user:hunter2@127.0.0.1:6379' }
routes:
  - name: catalog-api
    match: { pathPrefix: /api/catalog }
    proxy: { service: catalog, stripPrefix: /api }
  - name: item-v2
    match: { path: /api/items/:id, headers: { x-api-version: '2' } }
    proxy: { service: catalog, rewrite: '/v2/items/{id}' }
  - name: orders
    match: { pathPrefix: /api, methods: [GET, POST] }
    proxy: { service: orders }
  - name: beta
    match: { pathPrefix: /api, query: { beta: '1' } }
    proxy: { service: catalog, addPrefix: /beta }
  - name: admin-only-host
    match: { path: /internal, host: admin.example.com }
    respond: { status: 200, body: internal }
  - name: gone
    match: { path: /gone }
    proxy: { service: gone }
  - name: pinned
    match: { path: /api/catalog/special, priority: 5 }
    respond: { status: 418, body: { pinned: true } }
`,
    );
  });

  afterAll(async () => {
    await gw?.stop();
    await Promise.all([catalog?.close(), orders?.close()]);
    dir?.cleanup();
  });

  const get = async (path: string, headers: Record<string, string> = {}, method = 'GET') => {
    const res = await fetch(`${gw.url}${path}`, { method, headers });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
  };

  it('routes by path prefix and strips the prefix', async () => {
    const r = await get('/api/catalog/products?page=2');
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ origin: 'catalog', method: 'GET', url: '/catalog/products?page=2' });
  });

  it('uses header conditions and rewrites with params', async () => {
    const r = await get('/api/items/42', { 'x-api-version': '2' });
    expect(r.json()).toMatchObject({ origin: 'catalog', url: '/v2/items/42' });
    const plain = await get('/api/items/42');
    expect(plain.json()).toMatchObject({ origin: 'orders', url: '/api/items/42' });
  });

  it('uses query conditions and adds a prefix', async () => {
    const r = await get('/api/x?beta=1');
    expect(r.json()).toMatchObject({ origin: 'catalog', url: '/beta/api/x?beta=1' });
  });

  it('applies method conditions', async () => {
    const r = await get('/api/thing', {}, 'DELETE');
    expect(r.status).toBe(404);
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    expect(r.json()).toMatchObject({
      status: 404,
      code: 'TRELLIS_E_NO_ROUTE',
      requestId: r.headers.get('x-request-id'),
    });
  });

  it('lets an explicit priority beat a more general route', async () => {
    const r = await get('/api/catalog/special');
    expect(r.status).toBe(418);
    expect(r.json()).toEqual({ pinned: true });
  });

  it('matches hosts', async () => {
    // fetch() may not set Host, so these go over a raw socket.
    const port = Number(new URL(gw.url).port);
    const ask = (host: string) =>
      rawRequest(port, `GET /internal HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`);
    const hit = await ask('Admin.Example.com:8080');
    expect(rawStatus(hit)).toBe(200);
    expect(hit.endsWith('\r\n\r\ninternal')).toBe(true);
    expect(rawStatus(await ask('www.example.com'))).toBe(404);
  });

  it('normalises the path before matching, so a spelling cannot reach another route', async () => {
    const seen = catalog.requests.length;
    const reply = await rawRequest(
      Number(new URL(gw.url).port),
      'GET /api/orders/../catalog/%70roducts HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
    );
    expect(rawStatus(reply)).toBe(200);
    expect(catalog.requests.slice(seen).map((r) => r.url)).toEqual(['/catalog/products']);
    const slash = await get('/api%2Fcatalog/products');
    expect(slash.status).toBe(400);
    expect(slash.json()).toMatchObject({ code: 'TRELLIS_E_BAD_PATH' });
  });

  it('sets forwarding headers and replaces those of untrusted clients', async () => {
    const r = await get('/api/catalog/h', {
      'x-forwarded-for': '6.6.6.6',
      forwarded: 'for=6.6.6.6',
      'x-forwarded-host': 'evil',
    });
    const h = r.json().headers;
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe(new URL(gw.url).host);
    expect(h.forwarded).toBe(`for=127.0.0.1;proto=http;host="${new URL(gw.url).host}"`);
  });

  it('removes hop-by-hop headers, including those named in Connection', async () => {
    const reply = await rawRequest(
      Number(new URL(gw.url).port),
      'GET /api/catalog/hop HTTP/1.1\r\nhost: x\r\nconnection: close, x-secret-hop\r\nx-secret-hop: 1\r\nkeep-alive: 5\r\nproxy-authorization: Basic eA==\r\nx-kept: yes\r\n\r\n',
    );
    const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4));
    expect(body.headers['x-kept']).toBe('yes');
    for (const h of ['x-secret-hop', 'keep-alive', 'proxy-authorization'])
      expect(body.headers[h]).toBeUndefined();
  });

  it('passes a sane request id through and replaces an unsafe one', async () => {
    const kept = await get('/api/catalog/id', { 'x-request-id': 'abc-123' });
    expect(kept.headers.get('x-request-id')).toBe('abc-123');
    expect(kept.json().headers['x-request-id']).toBe('abc-123');
    const replaced = await get('/api/catalog/id', { 'x-request-id': 'a b"<script>' });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(replaced.json().headers['x-request-id']).toBe(replaced.headers.get('x-request-id'));
  });

  it('answers 502 problem details without upstream internals when a service is down', async () => {
    const r = await get('/gone');
    expect(r.status).toBe(502);
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    expect(r.json()).toEqual({
      type: 'https://trellis.dev/errors/TRELLIS_E_UPSTREAM_UNAVAILABLE',
      title: 'Bad Gateway',
      status: 502,
      detail: 'service "gone" could not be reached',
      code: 'TRELLIS_E_UPSTREAM_UNAVAILABLE',
      requestId: r.headers.get('x-request-id'),
    });
    expect(r.text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
  });

  it('logs one access line per request with route, service, upstream, status and request id', async () => {
    await get('/api/catalog/logged', { 'x-request-id': 'log-me-1' });
    const line = await gw.waitForOutput(/"reqId":"log-me-1"/);
    expect(JSON.parse(line)).toMatchObject({
      msg: 'access',
      reqId: 'log-me-1',
      route: 'catalog-api',
      service: 'catalog',
      upstream: catalog.url,
      status: 200,
      method: 'GET',
      path: '/api/catalog/logged',
    });
  });

  it('serves the admin API: health, routes by frontend, services, config with secrets masked, metrics', async () => {
    expect((await fetch(`${gw.adminUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${gw.adminUrl}/readyz`)).status).toBe(200);
    const routes = (await (await fetch(`${gw.adminUrl}/admin/routes`)).json()) as {
      frontends: Record<string, { name: string }[]>;
    };
    expect(routes.frontends.default?.map((r: { name: string }) => r.name)).toEqual([
      'catalog-api',
      'item-v2',
      'orders',
      'beta',
      'admin-only-host',
      'gone',
      'pinned',
    ]);
    const services = (await (await fetch(`${gw.adminUrl}/admin/services`)).json()) as {
      services: { name: string; upstreams: unknown[] }[];
    };
    expect(services.services.map((s: { name: string }) => s.name)).toEqual(['catalog', 'orders', 'gone']);
    expect(services.services[0]?.upstreams[0]).toMatchObject({
      id: catalog.url,
      healthy: true,
      ejected: false,
    });
    const config = await (await fetch(`${gw.adminUrl}/admin/config`)).text();
    expect(config).not.toContain('hunter2');
    expect(JSON.parse(config)).toMatchObject({
      version: 1,
      config: { stores: { shared: 'redis://user:***@127.0.0.1:6379' } },
    });
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /trellis_gateway_requests_total\{frontend="default",route="catalog-api",service="catalog",code="200"\} \d+/,
    );
    expect(metrics).toContain('trellis_gateway_request_duration_seconds_bucket');
    expect(metrics).toMatch(/trellis_gateway_open_connections \d+/);
    expect(metrics).toMatch(
      /trellis_upstream_healthy\{service="catalog",upstream="http:\/\/127\.0\.0\.1:\d+"\} 1/,
    );
  });
});

describe('trellis validate and trellis schema', () => {
  let dir: TempDir;
  beforeAll(() => {
    dir = tempDir();
  });
  afterAll(() => dir.cleanup());

  it('validate prints ok for a good file and exits 0', async () => {
    const file = dir.write('good.yaml', 'routes:\n  - match: { path: /a }\n    respond: { body: hi }\n');
    const r = await runCli(['validate', file]);
    expect(r).toMatchObject({ code: 0, stdout: `${file}: ok (gateway)\n` });
  });

  it('validate prints every problem with file:line:column and exits 1', async () => {
    const file = dir.write(
      'bad.yaml',
      'services:\n  catalog: { upstreams: [http://127.0.0.1:1] }\nroutes:\n  - match: { path: /a }\n    proxy: { service: catalgo }\n',
    );
    const r = await runCli(['validate', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `${file}:5:23 routes[0].proxy.service: unknown service "catalgo" (did you mean "catalog"?): define it under services:\n`,
    );
  });

  it('schema prints a JSON Schema that knows the route handlers', async () => {
    const r = await runCli(['schema']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout);
    expect(schema.title).toBe('Trellis gateway file');
    const route = schema.properties.routes.items;
    expect(Object.keys(route.properties)).toEqual(
      expect.arrayContaining(['match', 'middlewares', 'proxy', 'respond']),
    );
  });
});
