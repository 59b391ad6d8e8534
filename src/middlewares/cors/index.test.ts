import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { corsMiddleware } from './index.js';

let srv: ChainServer | undefined;
let reached = 0;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
  reached = 0;
});

async function start(options: unknown) {
  const mw = await createMiddleware(corsMiddleware, options);
  srv = await serveChain([mw], (ctx) => {
    reached++;
    // An origin that sets its own, contradicting CORS headers.
    ctx.res.writeHead(200, { 'access-control-allow-origin': '*', vary: 'Accept-Encoding' });
    ctx.res.end('ok');
  });
  return srv.url;
}

const preflight = (origin: string, method = 'PUT', headers = 'content-type') => ({
  method: 'OPTIONS' as const,
  headers: {
    origin,
    'access-control-request-method': method,
    'access-control-request-headers': headers,
  },
});

describe('cors', () => {
  const options = {
    origins: ['https://shop.example', 'https://*.shop.example'],
    headers: ['Content-Type', 'Authorization'],
    exposedHeaders: ['X-Request-Id'],
    credentials: true,
    maxAge: '1h',
  };

  it('answers an allowed preflight itself, with every CORS header', async () => {
    const url = await start(options);
    const r = await request(url, preflight('https://eu.shop.example'));
    await r.body.text();
    expect(r.statusCode).toBe(204);
    expect(r.headers['access-control-allow-origin']).toBe('https://eu.shop.example');
    expect(r.headers['access-control-allow-methods']).toContain('PUT');
    expect(r.headers['access-control-allow-headers']).toBe('Content-Type, Authorization');
    expect(r.headers['access-control-allow-credentials']).toBe('true');
    expect(r.headers['access-control-max-age']).toBe('3600');
    expect(r.headers.vary).toContain('Origin');
    expect(reached).toBe(0);
  });

  it('refuses preflights from disallowed origins, methods or headers without any CORS header', async () => {
    const url = await start(options);
    for (const p of [
      preflight('https://evil.example'),
      preflight('https://evil.example/.shop.example'),
      preflight('https://shop.example.evil.example'),
      preflight('null'),
      preflight('https://shop.example', 'TRACE'),
      preflight('https://shop.example', 'PUT', 'x-admin'),
    ]) {
      const r = await request(url, p);
      const body = (await r.body.json()) as { code: string };
      expect(r.statusCode).toBe(403);
      expect(body.code).toBe('TRELLIS_E_CORS_REJECTED');
      expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    }
    expect(reached).toBe(0);
  });

  it('adds CORS headers to actual requests only for allowed origins, always with Vary: Origin', async () => {
    const url = await start(options);
    const ok = await request(url, { headers: { origin: 'https://shop.example' } });
    await ok.body.text();
    expect(ok.headers['access-control-allow-origin']).toBe('https://shop.example');
    expect(ok.headers['access-control-expose-headers']).toBe('X-Request-Id');
    expect(ok.headers.vary).toBe('Accept-Encoding, Origin');
    const bad = await request(url, { headers: { origin: 'https://evil.example' } });
    await bad.body.text();
    expect(bad.statusCode).toBe(200);
    // The upstream's own `*` is removed too: the gateway's policy is the only one.
    expect(bad.headers['access-control-allow-origin']).toBeUndefined();
    expect(bad.headers.vary).toBe('Accept-Encoding, Origin');
  });

  it('any origin with "*", which cannot be combined with credentials', async () => {
    const url = await start({ origins: ['*'] });
    const r = await request(url, preflight('https://anything.example', 'GET', 'x-custom'));
    await r.body.text();
    expect(r.headers['access-control-allow-origin']).toBe('*');
    expect(r.headers['access-control-allow-headers']).toBe('x-custom');
    expect(() => corsMiddleware.options.parse({ origins: ['*'], credentials: true })).toThrow(/credentials/);
    expect(() => corsMiddleware.options.parse({ origins: ['*'], maxage: 1 })).toThrow(/maxage/);
  });
});
