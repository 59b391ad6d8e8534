import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { createMetricsRegistry } from '../../core/metrics.js';
import { KeysUnavailable, RemoteKeySet } from './remote.js';

let server: Server;
let url: string;
let answer: { status: number; body: string };
let fetches = 0;
let keys: Awaited<ReturnType<typeof generateKeyPair>>;
let good: string;

beforeAll(async () => {
  keys = await generateKeyPair('ES256', { extractable: true });
  good = JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256' }] });
  server = createServer((_req, res) => {
    fetches++;
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(answer.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
});
afterAll(() => new Promise((r) => server.close(r)));

const token = (kid = 'k1') =>
  new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid }).setExpirationTime('5m').sign(keys.privateKey);

const set = (cacheMaxAge: number, cooldown: number) =>
  new RemoteKeySet({
    url,
    cooldown,
    cacheMaxAge,
    fetchTimeout: 1000,
    logger: silentLogger(),
    metrics: createMetricsRegistry(),
    name: 'auth',
  });

describe('RemoteKeySet', () => {
  it('with no keys: KeysUnavailable with a Retry-After, and failed fetches respect the cooldown', async () => {
    answer = { status: 500, body: 'down' };
    fetches = 0;
    const s = set(60_000, 30_000);
    const t = await token();
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, () =>
        jwtVerify(t, s.getKey).then(
          () => 'ok',
          (e: unknown) => e,
        ),
      ),
    );
    for (const e of outcomes) expect(e).toBeInstanceOf(KeysUnavailable);
    expect((outcomes[0] as KeysUnavailable).retryAfter).toBeGreaterThan(25);
    expect(fetches).toBe(1);
    expect(s.health().status).toBe('unavailable');
  });

  it('keeps the last good keys past cacheMaxAge while refreshing fails; an unknown kid then is unavailable, not invalid', async () => {
    answer = { status: 200, body: good };
    const s = set(0, 0);
    await s.refresh();
    answer = { status: 200, body: '{"keys": []}' };
    await expect(jwtVerify(await token(), s.getKey)).resolves.toBeDefined();
    await s.refresh();
    expect(s.health().status).toBe('degraded');
    await expect(jwtVerify(await token(), s.getKey)).resolves.toBeDefined();
    await expect(jwtVerify(await token('k2'), s.getKey)).rejects.toBeInstanceOf(KeysUnavailable);
    answer = { status: 200, body: good };
    await s.refresh();
    expect(s.health().status).toBe('ok');
    await expect(jwtVerify(await token('k2'), s.getKey)).rejects.toThrow(/no applicable key/i);
  });
});
