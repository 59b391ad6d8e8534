import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway } from '../../gateway/gateway.js';

// The proxy handler in-process: streaming both ways, timeouts, and a client that goes away.
describe('proxy handler', () => {
  let origin: Server;
  let originUrl: string;
  let gw: Gateway;
  let url: string;
  const aborted: string[] = [];

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    if (path === '/upload') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
      });
      req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
      return;
    }
    if (path.startsWith('/download/')) {
      const total = Number(path.split('/')[2]);
      const chunk = Buffer.alloc(64 * 1024, 7);
      let sent = 0;
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const pump = () => {
        while (sent < total) {
          const n = Math.min(chunk.length, total - sent);
          sent += n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n)))
            return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    if (path === '/slow-headers') {
      setTimeout(() => res.end('late'), 1_000);
      return;
    }
    if (path === '/hang') {
      res.on('close', () => aborted.push(path));
      res.writeHead(200);
      res.write('partial');
      return;
    }
    res.end('ok');
  };

  beforeAll(async () => {
    origin = createServer(handle);
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    originUrl = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;
    gw = await startGateway({
      text: `listen: { port: 0, host: 127.0.0.1 }
admin: { enabled: false }
services:
  o: { upstreams: ['${originUrl}'] }
  impatient: { upstreams: ['${originUrl}'], headersTimeout: 100ms, retry: { attempts: 1 } }
routes:
  - { match: { pathPrefix: /quick }, proxy: { service: o, stripPrefix: /quick, timeout: 150ms } }
  - { match: { pathPrefix: /impatient }, proxy: { service: impatient, stripPrefix: /impatient } }
  - { match: { pathPrefix: / }, proxy: { service: o } }
`,
    });
    url = `http://127.0.0.1:${gw.ports.main}`;
  });

  afterAll(async () => {
    await gw?.stop(1_000);
    origin.closeAllConnections();
    await new Promise((r) => origin.close(r));
  });

  it('streams a large upload to the origin intact', async () => {
    const body = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4096) body[i] = i % 251;
    const res = await fetch(`${url}/upload`, { method: 'POST', body });
    expect(await res.json()).toEqual({
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
    });
  });

  it('streams a large download to the client intact, with backpressure', async () => {
    const total = 16 * 1024 * 1024 + 123;
    // A slow reader: node's client pauses while we wait, so the gateway must pause the origin.
    const received = await new Promise<number>((resolve, reject) => {
      request(`${url}/download/${total}`, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n % (1024 * 1024) < c.length) {
            res.pause();
            setTimeout(() => res.resume(), 5);
          }
        });
        res.on('end', () => resolve(n));
        res.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
    expect(received).toBe(total);
  });

  it('answers 504 problem details when the whole-request timeout passes', async () => {
    const res = await fetch(`${url}/quick/slow-headers`);
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ code: 'TRELLIS_E_UPSTREAM_TIMEOUT', status: 504 });
  });

  it('answers 504 when the response headers are late', async () => {
    const res = await fetch(`${url}/impatient/slow-headers`);
    expect(res.status).toBe(504);
    expect(((await res.json()) as { code: string }).code).toBe('TRELLIS_E_UPSTREAM_TIMEOUT');
  });

  it('cancels the upstream exchange when the client goes away', async () => {
    const controller = new AbortController();
    const res = await fetch(`${url}/hang`, { signal: controller.signal });
    expect(res.status).toBe(200);
    controller.abort();
    const deadline = Date.now() + 5_000;
    while (!aborted.includes('/hang') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(aborted).toContain('/hang');
  });
});
