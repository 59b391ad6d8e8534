import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayProcess, rawRequest, startGatewayCli, type TempDir, tempDir } from '../support/index.js';

// Issue 11, item 10: 1xx interim answers from the origin (103 Early Hints, 102 Processing) are
// relayed to the client, then the final answer on the same response; none of them is cached.
describe('trellis gateway: interim (1xx) responses', () => {
  let dir: TempDir;
  let origin: Server;
  let gw: GatewayProcess;
  let hits = 0;

  beforeAll(async () => {
    dir = tempDir();
    origin = createServer((req, res) => {
      hits++;
      res.writeEarlyHints({
        link: ['</app.css>; rel=preload; as=style', '</app.js>; rel=preload; as=script'],
      });
      res.writeProcessing();
      const body = JSON.stringify({ url: req.url, hit: hits });
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'public, max-age=60',
      });
      res.end(body);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    const port = (origin.address() as { port: number }).port;
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
services:
  o: { upstreams: ['http://127.0.0.1:${port}'] }
middlewares:
  cache: { cache: {} }
routes:
  - match: { pathPrefix: /cached }
    middlewares: [cache]
    proxy: { service: o }
  - match: { pathPrefix: / }
    proxy: { service: o }
`,
    );
  });

  afterAll(async () => {
    await gw?.stop();
    await new Promise<void>((r) => (origin ? origin.close(() => r()) : r()));
    dir?.cleanup();
  });

  const get = (path: string, version = '1.1') =>
    rawRequest(gw.ports.main!, `GET ${path} HTTP/${version}\r\nhost: x\r\nconnection: close\r\n\r\n`);
  const statuses = (reply: string) => [...reply.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));

  it('relays 103 with its Link headers and 102, then the final 200 and its body', async () => {
    const reply = await get('/page');
    expect(statuses(reply)).toEqual([103, 102, 200]);
    const hints = reply.slice(0, reply.indexOf('HTTP/1.1 102')).toLowerCase();
    expect(hints).toContain('</app.css>; rel=preload; as=style');
    expect(hints).toContain('</app.js>; rel=preload; as=script');
    expect(reply).toContain('"url":"/page"');
  });

  it('sends no 1xx to an HTTP/1.0 client', async () => {
    const reply = await rawRequest(gw.ports.main!, 'GET /old HTTP/1.0\r\nhost: x\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 200/);
    expect(reply).not.toContain(' 103 ');
    expect(reply).toContain('"url":"/old"');
  });

  it('a cached route relays the interim answers of a miss and stores only the final answer', async () => {
    const first = await get('/cached/a');
    expect(statuses(first)).toEqual([103, 102, 200]);
    const before = hits;
    const second = await get('/cached/a');
    expect(statuses(second)).toEqual([200]);
    expect(hits).toBe(before);
    expect(second).toContain('"url":"/cached/a"');
  });
});
