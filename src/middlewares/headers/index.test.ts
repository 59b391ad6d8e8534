import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { headersMiddleware } from './index.js';

let srv: ChainServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

describe('headers', () => {
  it('edits request headers before the handler and response headers however the handler writes them', async () => {
    const mw = await createMiddleware(headersMiddleware, {
      request: { set: { 'X-Env': 'prod' }, add: { 'X-Tag': 'gw' }, remove: ['x-secret'] },
      response: { set: { 'X-Served-By': 'trellis' }, remove: ['server'], add: { 'x-tag': 'two' } },
    });
    srv = await serveChain([mw], (ctx) => {
      // A raw-array head, as a proxy copying upstream headers would write it.
      ctx.res.writeHead(200, ['Server', 'origin/1', 'x-tag', 'one', 'content-type', 'application/json']);
      ctx.res.end(JSON.stringify(ctx.req.headers));
    });
    const r = await request(srv.url, { headers: { 'x-secret': 's', 'x-tag': 'client', 'x-env': 'dev' } });
    const seen = (await r.body.json()) as Record<string, string>;
    expect(seen['x-env']).toBe('prod');
    expect(seen['x-tag']).toBe('client, gw');
    expect(seen['x-secret']).toBeUndefined();
    expect(r.headers['x-served-by']).toBe('trellis');
    expect(r.headers.server).toBeUndefined();
    expect(r.headers['x-tag']).toEqual(['one', 'two']);
  });

  it('adds the security preset, and an explicit set wins over it', async () => {
    const mw = await createMiddleware(headersMiddleware, {
      securityHeaders: true,
      response: { set: { 'X-Frame-Options': 'SAMEORIGIN' } },
    });
    srv = await serveChain([mw], (ctx) => void ctx.res.end('ok'));
    const r = await request(srv.url);
    await r.body.text();
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(r.headers['referrer-policy']).toBe('strict-origin-when-cross-origin');
  });

  it('rejects unknown options and invalid header names', () => {
    expect(() => headersMiddleware.options.parse({ respnse: {} })).toThrow(/respnse/);
    expect(() => headersMiddleware.options.parse({ response: { set: { 'bad name': 'x' } } })).toThrow();
  });
});
