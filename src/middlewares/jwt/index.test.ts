import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT, UnsecuredJWT } from 'jose';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { jwtMiddleware } from './index.js';

type Keys = Awaited<ReturnType<typeof generateKeyPair>>;
let rsa: Keys;
let rotated: Keys;
let jwks: { keys: JWK[] };
let jwksServer: Server;
let jwksUrl: string;
let jwksHits = 0;
let srv: ChainServer | undefined;
const ISS = 'https://idp.test';
const AUD = 'shop';

beforeAll(async () => {
  rsa = await generateKeyPair('RS256', { extractable: true });
  rotated = await generateKeyPair('RS256', { extractable: true });
  jwks = { keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] };
  jwksServer = createServer((_req, res) => {
    jwksHits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
  });
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
});
afterAll(async () => {
  jwksServer.closeAllConnections();
  await new Promise((r) => jwksServer.close(r));
});
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

function sign(
  claims: Record<string, unknown> = {},
  opts: { kid?: string; key?: Keys; exp?: string | number } = {},
) {
  const jwt = new SignJWT({ sub: 'user-7', ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? 'k1' })
    .setIssuer(ISS)
    .setAudience(AUD)
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m');
  return jwt.sign((opts.key ?? rsa).privateKey);
}

async function start(extra: Record<string, unknown> = {}) {
  const mw = await createMiddleware(jwtMiddleware, {
    jwksUrl,
    issuer: ISS,
    audience: AUD,
    clockTolerance: '5s',
    claimHeaders: { 'x-user-id': 'sub', 'x-tenant': 'tenant' },
    ...extra,
  });
  const seen: Array<{ headers: Record<string, unknown>; jwt: unknown }> = [];
  srv = await serveChain([mw], (ctx) => {
    seen.push({ headers: { ...ctx.req.headers }, jwt: ctx.state.jwt });
    ctx.res.end('ok');
  });
  return seen;
}

const call = (token: string | undefined, extra: Record<string, string> = {}) =>
  request(srv!.url, {
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...extra },
  });

describe('jwt', () => {
  it('accepts a valid token: claims in ctx.state.jwt and upstream headers; forged copies removed', async () => {
    const seen = await start();
    const r = await call(await sign({ tenant: 'acme' }), { 'x-user-id': 'admin', 'x-tenant': 'evil' });
    expect(await r.body.text()).toBe('ok');
    expect(seen[0]!.headers['x-user-id']).toBe('user-7');
    expect(seen[0]!.headers['x-tenant']).toBe('acme');
    expect((seen[0]!.jwt as { sub: string }).sub).toBe('user-7');
    // A token without the claim: the forged header must still be gone.
    await (await call(await sign(), { 'x-tenant': 'evil' })).body.text();
    expect(seen[1]!.headers['x-tenant']).toBeUndefined();
    // A claim cannot break the header line, and non-ASCII arrives percent-encoded.
    await (await call(await sign({ tenant: 'a\r\nx-admin: 1 東京' }))).body.text();
    expect(seen[2]!.headers['x-tenant']).toBe('a%0D%0Ax-admin: 1 %E6%9D%B1%E4%BA%AC');
    expect(seen[2]!.headers['x-admin']).toBeUndefined();
  });

  it('refuses forged and broken tokens with 401 invalid_token; nothing reaches the origin', async () => {
    const seen = await start();
    const now = Math.floor(Date.now() / 1000);
    const pem = await exportSPKI(rsa.publicKey);
    const hsWithPublicKey = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setIssuer(ISS)
      .setAudience(AUD)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(pem));
    const none = new UnsecuredJWT({ sub: 'x' })
      .setIssuer(ISS)
      .setAudience(AUD)
      .setExpirationTime('5m')
      .encode();
    const valid = await sign();
    const [h, p] = valid.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify({ sub: 'admin', iss: ISS, aud: AUD, exp: now + 60 })).toString('base64url')}.${valid.split('.')[2]}`;
    const cases: Array<[string, string]> = [
      ['alg none', none],
      ['HS256 signed with the RSA public key', hsWithPublicKey],
      ['unknown kid', await sign({}, { kid: 'nope', key: rotated })],
      ['right kid, other key', await sign({}, { key: rotated })],
      ['expired', await sign({}, { exp: now - 60 })],
      [
        'not yet valid',
        await new SignJWT({})
          .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
          .setIssuer(ISS)
          .setAudience(AUD)
          .setNotBefore(now + 600)
          .setExpirationTime('20m')
          .sign(rsa.privateKey),
      ],
      [
        'wrong audience',
        await new SignJWT({})
          .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
          .setIssuer(ISS)
          .setAudience('other')
          .setExpirationTime('5m')
          .sign(rsa.privateKey),
      ],
      [
        'wrong issuer',
        await new SignJWT({})
          .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
          .setIssuer('https://evil')
          .setAudience(AUD)
          .setExpirationTime('5m')
          .sign(rsa.privateKey),
      ],
      ['tampered payload', tampered],
      ['garbage', 'not.a.token'],
      ['oversize', `${h}.${'A'.repeat(9000)}.${p}`],
    ];
    for (const [what, token] of cases) {
      const r = await call(token);
      const body = (await r.body.json()) as { code: string };
      expect(r.statusCode, what).toBe(401);
      expect(body.code, what).toBe('TRELLIS_E_JWT_INVALID');
      expect(r.headers['www-authenticate'], what).toMatch(/^Bearer realm="trellis", error="invalid_token"/);
    }
    const missing = await call(undefined);
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="trellis"');
    expect(((await missing.body.json()) as { code: string }).code).toBe('TRELLIS_E_JWT_MISSING');
    expect(seen).toEqual([]);
  });

  it('answers 403 insufficient_scope for a valid token without a required scope', async () => {
    const seen = await start({ scopes: ['orders:write'] });
    const r = await call(await sign({ scope: 'orders:read' }));
    expect(r.statusCode).toBe(403);
    expect(r.headers['www-authenticate']).toContain('error="insufficient_scope", scope="orders:write"');
    expect(((await r.body.json()) as { code: string }).code).toBe('TRELLIS_E_JWT_SCOPE');
    const ok = await call(await sign({ scp: ['orders:read', 'orders:write'] }));
    expect(ok.statusCode).toBe(200);
    await ok.body.text();
    expect(seen.length).toBe(1);
  });

  it('refetches the JWKS for a new kid, at most once per cooldown', async () => {
    await start({ jwksCooldown: '1m' });
    await (await call(await sign())).body.text();
    const before = jwksHits;
    // A flood of unknown kids costs at most one refetch.
    for (let i = 0; i < 20; i++)
      await (await call(await sign({}, { kid: `random-${i}`, key: rotated }))).body.text();
    expect(jwksHits - before).toBeLessThanOrEqual(1);
    await srv!.close();
    // A key rotated in after the first fetch is picked up on its first token (short cooldown).
    await start({ jwksCooldown: '1ms' });
    await (await call(await sign())).body.text();
    const fetched = jwksHits;
    jwks.keys.push({ ...(await exportJWK(rotated.publicKey)), kid: 'k2', alg: 'RS256' });
    const r = await call(await sign({}, { kid: 'k2', key: rotated }));
    expect(jwksHits).toBe(fetched + 1);
    expect(r.statusCode).toBe(200);
    await r.body.text();
    jwks.keys.pop();
  });

  it('remembers verified tokens, but a remembered token still expires', async () => {
    const seen = await start({ clockTolerance: '0s' });
    const t = await sign({}, { exp: Math.floor(Date.now() / 1000) + 2 });
    const before = jwksHits;
    for (let i = 0; i < 3; i++) expect(await (await call(t)).body.text()).toBe('ok');
    expect(seen.length).toBe(3);
    expect(jwksHits - before).toBeLessThanOrEqual(1);
    const deadline = Date.now() + 6000;
    let status = 200;
    while (status === 200 && Date.now() < deadline) {
      const r = await call(t);
      await r.body.text();
      status = r.statusCode;
      if (status === 200) await new Promise((res) => setTimeout(res, 50));
    }
    expect(status).toBe(401);
  });

  it('answers 503 when the remote JWKS cannot be fetched', async () => {
    await start({ jwksUrl: 'http://127.0.0.1:9/jwks.json', jwksTimeout: '500ms' });
    const r = await call(await sign());
    expect(r.statusCode).toBe(503);
    expect(((await r.body.json()) as { code: string }).code).toBe('TRELLIS_E_JWT_KEYS_UNAVAILABLE');
  });

  it('verifies HS256 with a static secret, and refuses configurations that invite confusion', async () => {
    const secret = 'x'.repeat(40);
    await start({ jwksUrl: undefined, secret });
    const hs = await new SignJWT({ sub: 's' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(ISS)
      .setAudience(AUD)
      .setExpirationTime('1m')
      .sign(new TextEncoder().encode(secret));
    const r = await call(hs);
    expect(r.statusCode).toBe(200);
    await r.body.text();
    // An RS256 token is not accepted by a secret-configured middleware.
    const rs = await call(await sign());
    expect(rs.statusCode).toBe(401);
    await rs.body.text();
    const base = { issuer: ISS, audience: AUD };
    expect(() => jwtMiddleware.options.parse({ ...base, jwksUrl, algorithms: ['HS256'] })).toThrow(/secret/);
    expect(() => jwtMiddleware.options.parse({ ...base, jwksUrl, algorithms: ['none'] })).toThrow();
    expect(() => jwtMiddleware.options.parse({ ...base, secret: 'short' })).toThrow(/32 bytes/);
    expect(() => jwtMiddleware.options.parse({ ...base, jwksUrl, secret })).toThrow(/exactly one/);
    expect(() => jwtMiddleware.options.parse({ jwksUrl })).toThrow(/issuer/);
  });
});
