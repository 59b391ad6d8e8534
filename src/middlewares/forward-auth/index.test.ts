import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { forwardAuthMiddleware } from './index.js';

let auth: Server;
let authUrl: string;
let srv: ChainServer | undefined;
let close: (() => Promise<void>) | undefined;
const authSaw: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  auth = createServer((req, res) => {
    authSaw.push(req.headers);
    const token = req.headers.authorization;
    if (token === 'Bearer good') {
      res.writeHead(200, { 'x-user-id': '42', 'x-ignored': 'no' }).end();
    } else if (token === 'Bearer slow') {
      setTimeout(() => res.writeHead(200).end(), 2000).unref();
    } else if (token === 'Bearer login') {
      res.writeHead(302, { location: 'https://login.example/' }).end();
    } else {
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'application/json' });
      res.end('{"error":"no"}');
    }
  });
  await new Promise<void>((r) => auth.listen(0, '127.0.0.1', r));
  authUrl = `http://127.0.0.1:${(auth.address() as AddressInfo).port}/check`;
});
afterAll(async () => {
  auth.closeAllConnections();
  await new Promise((r) => auth.close(r));
});
afterEach(async () => {
  await srv?.close();
  await close?.();
  srv = undefined;
  authSaw.length = 0;
});

async function start(options: Record<string, unknown>) {
  const mw = await createMiddleware(forwardAuthMiddleware, { address: authUrl, ...options });
  close = mw.close;
  const seen: Array<Record<string, unknown>> = [];
  srv = await serveChain([mw], (ctx) => {
    seen.push({ ...ctx.req.headers });
    ctx.res.end('ok');
  });
  return seen;
}

describe('forwardAuth', () => {
  it('passes an accepted request on with the chosen auth headers (client copies replaced)', async () => {
    const seen = await start({ responseHeaders: ['X-User-Id'] });
    const r = await request(`${srv!.url}/orders?x=1`, {
      method: 'POST',
      body: 'payload',
      headers: { authorization: 'Bearer good', 'x-user-id': '1' },
    });
    expect(await r.body.text()).toBe('ok');
    expect(seen[0]!['x-user-id']).toBe('42');
    expect(seen[0]!['x-ignored']).toBeUndefined();
    expect(authSaw[0]!['x-forwarded-method']).toBe('POST');
    expect(authSaw[0]!['x-forwarded-uri']).toBe('/orders?x=1');
  });

  it('answers a refusal with the auth service status, body and challenge; nothing reaches the service', async () => {
    const seen = await start({ responseHeaders: ['x-user-id'] });
    const r = await request(srv!.url, { headers: { authorization: 'Bearer bad', 'x-user-id': '1' } });
    expect(r.statusCode).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer');
    expect(await r.body.text()).toBe('{"error":"no"}');
    const redirect = await request(srv!.url, { headers: { authorization: 'Bearer login' } });
    await redirect.body.text();
    expect(redirect.statusCode).toBe(302);
    expect(redirect.headers.location).toBe('https://login.example/');
    expect(seen).toEqual([]);
  });

  it('fails closed with 503 on timeout by default, and open when told', async () => {
    const seen = await start({ timeout: '100ms' });
    const r = await request(srv!.url, { headers: { authorization: 'Bearer slow' } });
    expect(r.statusCode).toBe(503);
    expect(((await r.body.json()) as { code: string }).code).toBe('TRELLIS_E_AUTH_UNAVAILABLE');
    expect(seen).toEqual([]);
    await srv!.close();
    await close!();
    const seenOpen = await start({ address: 'http://127.0.0.1:9/', onError: 'open' });
    const open = await request(srv!.url);
    expect(await open.body.text()).toBe('ok');
    expect(seenOpen.length).toBe(1);
  });
});
