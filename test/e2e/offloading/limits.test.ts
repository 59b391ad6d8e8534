import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  type Origin,
  rawRequest,
  rawStatus,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

// bodyLimit and timeout wrap the real proxy: a streamed body past the limit must not reach the
// origin as if whole, and a slow origin must give the client a 504 while the gateway stays up.
describe('trellis gateway: bodyLimit and timeout in front of the proxy', () => {
  let dir: TempDir;
  let origin: Origin;
  let gw: GatewayProcess;
  let slowAborted = 0;

  beforeAll(async () => {
    dir = tempDir();
    origin = await startOrigin('origin', (req, res) => {
      if (req.url.startsWith('/slow')) {
        const timer = setTimeout(() => res.end('late'), 3000);
        res.once('close', () => {
          clearTimeout(timer);
          slowAborted++;
        });
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`got ${req.body.length}`);
    });
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
services:
  origin: { upstreams: ['${origin.url}'] }
middlewares:
  small: { bodyLimit: { max: 1kb } }
  quick: { timeout: { request: 300ms } }
routes:
  - match: { pathPrefix: /upload }
    middlewares: [small]
    proxy: { service: origin }
  - match: { pathPrefix: /slow }
    middlewares: [quick]
    proxy: { service: origin }
`,
    );
  });

  afterAll(async () => {
    await gw?.stop();
    await origin?.close();
    dir?.cleanup();
  });

  it('passes a small body and refuses a declared large one with 413 before the origin', async () => {
    const ok = await request(`${gw.url}/upload`, { method: 'POST', body: 'x'.repeat(1000) });
    expect(await ok.body.text()).toBe('got 1000');
    const before = origin.requests.length;
    const big = await request(`${gw.url}/upload`, { method: 'POST', body: 'x'.repeat(5000) });
    expect(big.statusCode).toBe(413);
    expect(((await big.body.json()) as { code: string }).code).toBe('TRELLIS_E_BODY_TOO_LARGE');
    expect(origin.requests.length).toBe(before);
  });

  it('cuts a chunked body past the limit: 413, and the origin never records a whole body', async () => {
    const before = origin.requests.length;
    const chunk = 'y'.repeat(600);
    const reply = await rawRequest(
      gw.ports.main!,
      `POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n${[1, 2, 3].map(() => `258\r\n${chunk}\r\n`).join('')}0\r\n\r\n`,
    );
    expect(rawStatus(reply)).toBe(413);
    expect(origin.requests.length).toBe(before);
    const after = await request(`${gw.url}/upload`, { method: 'POST', body: 'ok' });
    expect(await after.body.text()).toBe('got 2');
  });

  it('answers 504 when the origin is slower than the route timeout, and frees the upstream request', async () => {
    const r = await request(`${gw.url}/slow`);
    expect(r.statusCode).toBe(504);
    expect(((await r.body.json()) as { code: string }).code).toBe('TRELLIS_E_ROUTE_TIMEOUT');
    await waitUntil(() => slowAborted > 0, 'the origin to see the abandoned request closed', 5000);
    const up = await request(`${gw.url}/upload`, { method: 'POST', body: 'still up' });
    expect(await up.body.text()).toBe('got 8');
  });
});
