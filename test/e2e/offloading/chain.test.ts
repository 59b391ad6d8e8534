import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { Agent, request } from 'undici';
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
} from '../support/index.js';

// One gateway, every request-path middleware on its own route, attacked with bad input: each
// attack gets the right status, nothing that should not reaches the origin, the gateway stays up.
describe('trellis gateway: offloading middlewares under bad input', () => {
  let dir: TempDir;
  let origin: Origin;
  let gw: GatewayProcess;
  let keys: Awaited<ReturnType<typeof generateKeyPair>>;
  const ISS = 'https://idp.test';
  const big = JSON.stringify(
    Array.from({ length: 150 }, (_, i) => ({ id: i, name: `product ${i}`, tags: ['a', 'b'] })),
  );
  let cachedHits = 0;

  const token = (claims: Record<string, unknown> = {}, alg = 'RS256') =>
    new SignJWT({ sub: 'user-7', ...claims })
      .setProtectedHeader({ alg, kid: 'k1' })
      .setIssuer(ISS)
      .setAudience('shop')
      .setExpirationTime('5m')
      .sign(keys.privateKey);

  beforeAll(async () => {
    dir = tempDir();
    keys = await generateKeyPair('RS256', { extractable: true });
    const jwks = dir.write(
      'jwks.json',
      JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'RS256' }] }),
    );
    origin = await startOrigin('origin', (req, res) => {
      if (req.url.startsWith('/big')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) });
        res.end(big);
        return;
      }
      if (req.url.startsWith('/cached')) {
        cachedHits++;
        // Slow enough that a burst of misses overlaps.
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=60' });
          res.end(`for ${req.headers.host}`);
        }, 100);
        return;
      }
      const text = JSON.stringify({ url: req.url, headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1, maxHeaderSize: 8kb }
services:
  origin: { upstreams: ['${origin.url}'] }
middlewares:
  auth:
    jwt: { jwksFile: ${jwks}, issuer: ${ISS}, audience: shop, claimHeaders: { x-user-id: sub } }
  writers:
    jwt: { jwksFile: ${jwks}, issuer: ${ISS}, audience: shop, scopes: [orders:write] }
  browser: { cors: { origins: ['https://shop.test'], credentials: true } }
  limit: { rateLimit: { points: 20, per: 1m, algorithm: fixedWindow } }
  squeeze: { compress: {} }
  edge-cache: { cache: {} }
  office: { ipFilter: { allow: [10.0.0.0/8] } }
  secure: { headers: { securityHeaders: true } }
routes:
  - match: { pathPrefix: /api/orders }
    middlewares: [browser, writers]
    proxy: { service: origin }
  - match: { pathPrefix: /api }
    middlewares: [browser, auth, secure]
    proxy: { service: origin }
  - match: { pathPrefix: /limited }
    middlewares: [limit]
    proxy: { service: origin }
  - match: { pathPrefix: /big }
    middlewares: [squeeze]
    proxy: { service: origin }
  - match: { pathPrefix: /cached }
    middlewares: [edge-cache]
    proxy: { service: origin }
  - match: { pathPrefix: /office }
    middlewares: [office]
    proxy: { service: origin }
`,
    );
  });

  afterAll(async () => {
    await gw?.stop();
    await origin?.close();
    dir?.cleanup();
  });

  const reached = () => origin.requests.length;

  it('jwt: a valid token passes with its claim header; forged and broken tokens get 401 and never reach the origin', async () => {
    const ok = await request(`${gw.url}/api/me`, {
      headers: { authorization: `Bearer ${await token()}`, 'x-user-id': 'admin' },
    });
    const seen = (await ok.body.json()) as { headers: Record<string, string> };
    expect(ok.statusCode).toBe(200);
    expect(seen.headers['x-user-id']).toBe('user-7');
    expect(ok.headers['strict-transport-security']).toContain('max-age=');

    const now = Math.floor(Date.now() / 1000);
    const hsWithPublicKey = await new SignJWT({ sub: 'admin' })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setIssuer(ISS)
      .setAudience('shop')
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(await exportSPKI(keys.publicKey)));
    const other = await generateKeyPair('RS256');
    const forged = [
      new UnsecuredJWT({ sub: 'admin' }).setIssuer(ISS).setAudience('shop').setExpirationTime('5m').encode(),
      hsWithPublicKey,
      await new SignJWT({ sub: 'x' })
        .setProtectedHeader({ alg: 'RS256', kid: 'k9' })
        .setIssuer(ISS)
        .setAudience('shop')
        .setExpirationTime('5m')
        .sign(other.privateKey),
      await new SignJWT({ sub: 'x' })
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setIssuer(ISS)
        .setAudience('shop')
        .setExpirationTime(now - 120)
        .sign(keys.privateKey),
      await token({ nbf: now + 600 }),
      await new SignJWT({})
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setIssuer(ISS)
        .setAudience('other')
        .setExpirationTime('5m')
        .sign(keys.privateKey),
      'a.b.c',
    ];
    const before = reached();
    for (const t of forged) {
      const r = await request(`${gw.url}/api/me`, { headers: { authorization: `Bearer ${t}` } });
      const body = (await r.body.json()) as { code: string; requestId: string };
      expect(r.statusCode).toBe(401);
      expect(r.headers['content-type']).toBe('application/problem+json');
      expect(r.headers['www-authenticate']).toContain('error="invalid_token"');
      expect(body.code).toBe('TRELLIS_E_JWT_INVALID');
      expect(body.requestId).toBe(r.headers['x-request-id']);
    }
    const scope = await request(`${gw.url}/api/orders`, {
      headers: { authorization: `Bearer ${await token({ scope: 'orders:read' })}` },
    });
    await scope.body.text();
    expect(scope.statusCode).toBe(403);
    expect(reached()).toBe(before);
  });

  it('headers too large or malformed are refused at the edge', async () => {
    const before = reached();
    const huge = await rawRequest(
      gw.ports.main!,
      `GET /api/me HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${'a'.repeat(9000)}\r\nconnection: close\r\n\r\n`,
    );
    expect(rawStatus(huge)).toBe(431);
    const broken = await rawRequest(
      gw.ports.main!,
      'GET /api/me HTTP/1.1\r\nhost: x\r\nauthorization Bearer\r\nconnection: close\r\n\r\n',
    );
    expect(rawStatus(broken)).toBe(400);
    expect(reached()).toBe(before);
  });

  it('cors: disallowed preflights get 403 with no CORS headers; allowed ones are answered at the gateway', async () => {
    const before = reached();
    for (const o of ['https://evil.test', 'null', 'https://shop.test.evil.test']) {
      const r = await request(`${gw.url}/api/me`, {
        method: 'OPTIONS',
        headers: { origin: o, 'access-control-request-method': 'DELETE' },
      });
      await r.body.text();
      expect(r.statusCode).toBe(403);
      expect(Object.keys(r.headers).some((h) => h.startsWith('access-control-'))).toBe(false);
    }
    const ok = await request(`${gw.url}/api/me`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://shop.test',
        'access-control-request-method': 'DELETE',
        'access-control-request-headers': 'authorization',
      },
    });
    await ok.body.text();
    expect(ok.statusCode).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe('https://shop.test');
    expect(ok.headers['access-control-allow-credentials']).toBe('true');
    expect(reached()).toBe(before);
  });

  it('rateLimit: hammered from many connections, exactly the limit reaches the origin', async () => {
    const before = reached();
    const agent = new Agent({ connections: 25 });
    const codes = await Promise.all(
      Array.from({ length: 80 }, async () => {
        const r = await request(`${gw.url}/limited`, { dispatcher: agent });
        await r.body.text();
        return r.statusCode;
      }),
    );
    await agent.close();
    expect(codes.filter((c) => c === 200).length).toBe(20);
    expect(codes.filter((c) => c === 429).length).toBe(60);
    expect(reached() - before).toBe(20);
    const up = await request(`${gw.url}/big`);
    await up.body.text();
    expect(up.statusCode).toBe(200);
  });

  it('compress: every Accept-Encoding, however abusive, gets a body that decodes to the original', async () => {
    for (const ae of [
      'br',
      'gzip',
      'gzip;q=1, br;q=0.1',
      'br;q=abc, gzip;q=2',
      '*;q=0',
      'identity',
      ','.repeat(4000),
      `${'x;q=0.5,'.repeat(500)}gzip`,
    ]) {
      const r = await request(`${gw.url}/big`, { headers: { 'accept-encoding': ae } });
      const raw = Buffer.from(await r.body.arrayBuffer());
      const enc = r.headers['content-encoding'];
      const text = (
        enc === 'br' ? brotliDecompressSync(raw) : enc === 'gzip' ? gunzipSync(raw) : raw
      ).toString();
      expect(r.statusCode, ae.slice(0, 40)).toBe(200);
      expect(text, ae.slice(0, 40)).toBe(big);
      expect(r.headers.vary).toContain('Accept-Encoding');
    }
  });

  it('cache: a burst of misses sends one request upstream; a poisoned Host stays with the attacker', async () => {
    const before = cachedHits;
    const burst = await Promise.all(
      Array.from({ length: 15 }, async () => {
        const r = await request(`${gw.url}/cached/item`);
        return r.body.text();
      }),
    );
    expect(new Set(burst).size).toBe(1);
    expect(cachedHits - before).toBe(1);
    const poisoned = await request(`${gw.url}/cached/item`, { headers: { host: 'evil.test' } });
    expect(await poisoned.body.text()).toBe('for evil.test');
    const victim = await request(`${gw.url}/cached/item`);
    expect(await victim.body.text()).toBe(burst[0]);
    expect(victim.headers['cache-status']).toBe('trellis; hit');
  });

  it('ipFilter: X-Forwarded-For from an untrusted address cannot spoof an allowed client', async () => {
    const before = reached();
    for (const xff of ['10.0.0.1', '10.0.0.1, 10.0.0.2']) {
      const r = await request(`${gw.url}/office`, {
        headers: { 'x-forwarded-for': xff, forwarded: 'for=10.0.0.1' },
      });
      expect(r.statusCode).toBe(403);
      expect(((await r.body.json()) as { code: string }).code).toBe('TRELLIS_E_IP_DENIED');
    }
    expect(reached()).toBe(before);
  });
});
