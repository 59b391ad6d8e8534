import { connect } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { timeoutMiddleware } from './index.js';

let srv: ChainServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

describe('timeout', () => {
  it('answers 504 problem details when the handler is too slow, and survives its late writes', async () => {
    const mw = await createMiddleware(timeoutMiddleware, { request: '100ms' });
    let late: (() => void) | undefined;
    srv = await serveChain([mw], (ctx) => {
      late = () => {
        ctx.res.setHeader('x-late', '1');
        ctx.res.writeHead(200);
        ctx.res.end('too late');
      };
    });
    const r = await request(srv.url);
    expect(r.statusCode).toBe(504);
    const body = (await r.body.json()) as { code: string };
    expect(body.code).toBe('TRELLIS_E_ROUTE_TIMEOUT');
    expect(() => late!()).not.toThrow();
  });

  it('lets a fast response through untouched', async () => {
    const mw = await createMiddleware(timeoutMiddleware, { request: '2s' });
    srv = await serveChain([mw], (ctx) => void ctx.res.end('fast'));
    const r = await request(srv.url);
    expect(r.statusCode).toBe(200);
    expect(await r.body.text()).toBe('fast');
  });

  it('answers 408 when the client sends its body too slowly', async () => {
    const mw = await createMiddleware(timeoutMiddleware, { request: '5s', body: '100ms' });
    srv = await serveChain([mw], async (ctx) => {
      for await (const _ of ctx.req);
      ctx.res.end('got it');
    });
    const { port } = new URL(srv.url);
    const head = await new Promise<string>((resolve, reject) => {
      const s = connect(Number(port), '127.0.0.1');
      let got = '';
      s.on('data', (d) => {
        got += d.toString();
      });
      s.on('close', () => resolve(got));
      s.on('error', reject);
      // Announce 100 bytes and send 5: the rest never comes.
      s.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello');
    });
    expect(head).toMatch(/^HTTP\/1\.1 408 /);
    expect(head).toContain('TRELLIS_E_BODY_TIMEOUT');
  });
});
