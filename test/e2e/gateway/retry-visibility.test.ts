import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  type Origin,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

// Issue 11, end of item 11: a GET answered 502/503/504 is retried by default (docs say so), and
// behind a cache that retry must be visible: the access log counts retries and says why.
describe('trellis gateway: retries are visible', () => {
  let dir: TempDir;
  let origin: Origin;
  let gw: GatewayProcess;
  const seen = new Map<string, number>();

  beforeAll(async () => {
    dir = tempDir();
    origin = await startOrigin('o', (req, res) => {
      const n = (seen.get(req.url) ?? 0) + 1;
      seen.set(req.url, n);
      const status = n === 1 ? 503 : 200;
      res.writeHead(status, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=60' });
      res.end(`attempt ${n}`);
    });
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
services:
  o: { upstreams: ['${origin.url}'], retry: { budget: { minPerSecond: 100 } } }
middlewares:
  cache: { cache: {} }
routes:
  - match: { pathPrefix: / }
    middlewares: [cache]
    proxy: { service: o }
`,
    );
  });

  afterAll(async () => {
    await gw?.stop();
    await origin?.close();
    dir?.cleanup();
  });

  const accessLine = (requestId: string) =>
    waitUntil(
      () =>
        gw
          .output()
          .split('\n')
          .filter((l) => l.includes('"msg":"access"') && l.includes(requestId))
          .map((l) => JSON.parse(l) as Record<string, unknown>)[0],
      'the access log line',
    );

  it('a GET retried after a 503 says so in the access log: retries and why', async () => {
    const res = await fetch(`${gw.url}/page`, { headers: { 'x-request-id': 'retry-visible-1' } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('attempt 2');
    const line = await accessLine(res.headers.get('x-request-id')!);
    expect(line).toMatchObject({ status: 200, attempts: 2, retries: 1, retriedOn: ['503'] });
  });

  it('an answer on the first attempt logs zero retries', async () => {
    seen.set('/fresh', 1);
    const res = await fetch(`${gw.url}/fresh`);
    expect(res.status).toBe(200);
    const line = await accessLine(res.headers.get('x-request-id')!);
    expect(line).toMatchObject({ attempts: 1, retries: 0 });
    expect(line.retriedOn).toBeUndefined();
  });

  it('the retries are counted in /metrics too', async () => {
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/trellis_upstream_retries_total\{service="o"\} [1-9]/);
  });
});
