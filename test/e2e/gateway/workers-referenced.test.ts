import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Client } from 'undici';
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

// With `workers: 2` the primary watches the files the configuration names and reloads every
// worker together when one changes, as a single-process gateway does: a replaced JWKS file
// (a key rotation) is used by both workers, not by neither.
describe('trellis gateway: workers: 2 and a file the configuration refers to', () => {
  let dir: TempDir;
  let origin: Origin;
  let gw: GatewayProcess;
  const ISS = 'https://idp.test';
  const keyPair = () => generateKeyPair('RS256', { extractable: true });
  let first: Awaited<ReturnType<typeof keyPair>>;
  let second: Awaited<ReturnType<typeof keyPair>>;

  type Key = Awaited<ReturnType<typeof keyPair>>['publicKey'];
  const jwks = async (kid: string, key: Key) =>
    JSON.stringify({ keys: [{ ...(await exportJWK(key)), kid, alg: 'RS256' }] });
  const token = (kid: string, key: Key) =>
    new SignJWT({ sub: 'u1' })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuer(ISS)
      .setAudience('shop')
      .setExpirationTime('5m')
      .sign(key);

  /** Statuses of one request on each of 8 new connections (cluster hands them to both workers). */
  const statuses = async (bearer: string) =>
    Promise.all(
      Array.from({ length: 8 }, async () => {
        const client = new Client(gw.url);
        try {
          const r = await client.request({
            path: '/api',
            method: 'GET',
            headers: { authorization: `Bearer ${bearer}` },
          });
          await r.body.dump();
          return r.statusCode;
        } finally {
          await client.close();
        }
      }),
    );

  beforeAll(async () => {
    dir = tempDir();
    first = await keyPair();
    second = await keyPair();
    dir.write('jwks.json', await jwks('k1', first.publicKey));
    origin = await startOrigin('origin');
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
workers: 2
services:
  origin: { upstreams: ['${origin.url}'] }
middlewares:
  auth: { jwt: { jwksFile: ./jwks.json, issuer: ${ISS}, audience: shop } }
routes:
  - match: { pathPrefix: /api }
    middlewares: [auth]
    proxy: { service: origin }
`,
    );
    await waitUntil(
      () =>
        gw
          .output()
          .split('\n')
          .filter((l) => l.includes('"msg":"worker started"')).length === 2,
      'two workers to start',
    );
  });

  afterAll(async () => {
    await gw?.stop('SIGKILL');
    await origin?.close();
    dir?.cleanup();
  });

  it('reloads every worker when the JWKS file is replaced', async () => {
    const old = await token('k1', first.privateKey);
    const rotated = await token('k2', second.privateKey);
    expect(await statuses(old)).toEqual(Array(8).fill(200));
    expect(await statuses(rotated)).toEqual(Array(8).fill(401));

    dir.write('jwks.json', await jwks('k2', second.publicKey));
    await gw.waitForOutput(/refers to changed: reloading every worker/);
    await gw.waitForOutput(/configuration applied on every worker/);
    expect(await statuses(rotated)).toEqual(Array(8).fill(200));
    expect(await statuses(old)).toEqual(Array(8).fill(401));
  });
});
