import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Agent, request } from 'undici';
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

const ISS = 'https://idp.test';

/** What the identity provider's JWKS endpoint answers right now. */
type Jwks = { mode: 'keys' } | { mode: 'status'; status: number } | { mode: 'raw'; body: string };

describe('trellis gateway: jwt through an identity provider outage', () => {
  let dir: TempDir;
  let origin: Origin;
  let idp: Origin;
  let keys: Awaited<ReturnType<typeof generateKeyPair>>;
  let jwk: Record<string, unknown>;
  let jwks: Jwks = { mode: 'keys' };
  let fetches = 0;
  const gateways: GatewayProcess[] = [];

  const token = () =>
    new SignJWT({ sub: 'user-7' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(ISS)
      .setAudience('shop')
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(keys.privateKey);

  /** A gateway whose one route needs a token checked against the test's JWKS endpoint. */
  const gateway = (name: string, jwt: Record<string, unknown>) =>
    startGatewayCli(
      `${dir.path}/${name}.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
services:
  origin: { upstreams: ['${origin.url}'] }
middlewares:
  auth: { jwt: ${JSON.stringify({ jwksUrl: `${idp.url}/jwks.json`, issuer: ISS, audience: 'shop', verifiedCacheTtl: '0s', ...jwt })} }
routes:
  - match: { pathPrefix: / }
    middlewares: [auth]
    proxy: { service: origin }
`,
    ).then((g) => {
      gateways.push(g);
      return g;
    });

  const readyz = async (g: GatewayProcess) =>
    (await (await fetch(`${g.adminUrl}/readyz`)).json()) as {
      status: string;
      checks?: Record<string, { status: string; detail?: string }>;
    };

  beforeAll(async () => {
    dir = tempDir();
    origin = await startOrigin('origin');
    keys = await generateKeyPair('ES256', { extractable: true });
    jwk = { ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    idp = await startOrigin('idp', (_req, res) => {
      fetches++;
      const j = jwks;
      if (j.mode === 'status') {
        res.writeHead(j.status, { 'content-type': 'text/plain' });
        res.end('identity provider down');
        return;
      }
      const body = j.mode === 'raw' ? j.body : JSON.stringify({ keys: [jwk] });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
  });
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await origin?.close();
    await idp?.close();
    dir?.cleanup();
  });

  it('with no key set to be had: 503 with Retry-After (never 401), a cooldown on failed fetches, said in /readyz and the log', async () => {
    jwks = { mode: 'status', status: 500 };
    fetches = 0;
    const g = await gateway('down', { jwksCooldown: '30s' });
    const bearer = `Bearer ${await token()}`;
    const agent = new Agent({ connections: 20 });
    const answers = await Promise.all(
      Array.from({ length: 300 }, async () => {
        const r = await request(`${g.url}/orders`, { headers: { authorization: bearer }, dispatcher: agent });
        return { status: r.statusCode, retryAfter: r.headers['retry-after'], body: await r.body.text() };
      }),
    );
    await agent.close();
    expect(new Set(answers.map((a) => a.status))).toEqual(new Set([503]));
    const retryAfter = Number(answers[0]!.retryAfter);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(30);
    expect(JSON.parse(answers[0]!.body).code).toBe('TRELLIS_E_JWT_KEYS_UNAVAILABLE');
    // One fetch at load, none again within the cooldown: 300 requests do not become 24 fetches.
    expect(fetches).toBeLessThanOrEqual(2);
    expect(origin.requests.length).toBe(0);
    const ready = await readyz(g);
    expect(ready.checks?.['middleware:auth']?.status).toBe('unavailable');
    expect(ready.checks?.['middleware:auth']?.detail).toMatch(/answered 500/);
    await g.waitForOutput(/JWKS fetch failed and no key set is known/);
  });

  it('keeps verifying with the last good key set past its age while refreshing fails (500, then a broken set), and recovers', async () => {
    jwks = { mode: 'keys' };
    const g = await gateway('stale', { jwksCacheMaxAge: '1s', jwksCooldown: '1s' });
    const get = async () =>
      (await fetch(`${g.url}/orders`, { headers: { authorization: `Bearer ${await token()}` } })).status;
    expect(await get()).toBe(200);
    expect((await readyz(g)).status).toBe('ready');

    for (const outage of [
      { mode: 'status', status: 500 },
      { mode: 'raw', body: '{"keys": "not a list"}' },
    ] as Jwks[]) {
      jwks = outage;
      const seen: number[] = [];
      // Requests go on while the set ages past 1 s and each refresh (one per cooldown) fails.
      const ready = await waitUntil(
        async () => {
          seen.push(await get());
          const r = await readyz(g);
          return r.checks?.['middleware:auth']?.status === 'degraded' ? r : undefined;
        },
        'readyz to report stale keys',
        20_000,
      );
      expect(ready.status).toBe('degraded');
      expect(ready.checks!['middleware:auth']!.detail).toMatch(/last good JWKS/);
      expect(new Set(seen)).toEqual(new Set([200]));
      expect(await get()).toBe(200);
      const metrics = await (await fetch(`${g.adminUrl}/metrics`)).text();
      expect(metrics).toMatch(/trellis_jwks_stale\{middleware="auth"\} 1/);
      expect(metrics).toMatch(/trellis_jwks_fetches_total\{middleware="auth",result="failed"\} [1-9]/);
      await g.waitForOutput(/still verifying with the last good key set/);
      jwks = { mode: 'keys' };
      await waitUntil(
        async () => (await get()) === 200 && (await readyz(g)).status === 'ready',
        'the key set to be refreshed',
        20_000,
      );
    }
    await g.waitForOutput(/JWKS fetched again/);
  });
});
