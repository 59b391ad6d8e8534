import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:https';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, type TestPki } from '../../../src/http/tls/testing.js';
import { httpsOrigin } from '../support/https-origin.js';
import {
  type GatewayProcess,
  runCli,
  startGatewayCli,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

async function get(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await request(url);
  const text = await r.body.text();
  return { status: r.statusCode, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

// TLS origination through the real CLI: a private CA, SNI, mutual TLS, clear 502s, load-time checks.
describe('trellis gateway: TLS to https upstreams (private CA, SNI, mTLS)', () => {
  let dir: TempDir;
  let pki: TestPki;
  let gw: GatewayProcess;
  let plain: { server: Server; url: string };
  let mtls: { server: Server; url: string };
  let client: { cert: string; key: string };
  let stranger: { cert: string; key: string };

  beforeAll(async () => {
    dir = tempDir();
    pki = createTestPki();
    const server = pki.issue('origin', { cn: 'origin.test', dns: ['origin.test'], ips: ['127.0.0.1'] });
    client = pki.issue('client', { cn: 'gateway-client', client: true });
    stranger = pki.issue('stranger', { cn: 'stranger', client: true });
    plain = await httpsOrigin(server);
    mtls = await httpsOrigin({ ...server, ca: pki.ca, requireClientCert: true });
    // Relative paths: they start at the configuration file's folder.
    copyFileSync(pki.ca, `${dir.path}/ca.pem`);
    copyFileSync(client.cert, `${dir.path}/client.pem`);
    copyFileSync(client.key, `${dir.path}/client.key`);
    const svc = (url: string, tls?: string) =>
      `{ upstreams: ['${url}'], retry: { attempts: 1 }${tls ? `, tls: ${tls}` : ''} }`;
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
services:
  withCa: ${svc(plain.url, '{ ca: ./ca.pem }')}
  noCa: ${svc(plain.url)}
  sni: ${svc(plain.url, '{ ca: ./ca.pem, servername: origin.test }')}
  wrongName: ${svc(plain.url, '{ ca: ./ca.pem, servername: other.test }')}
  mtls: ${svc(mtls.url, '{ ca: ./ca.pem, cert: ./client.pem, key: ./client.key }')}
  mtlsNoCert: ${svc(mtls.url, '{ ca: ./ca.pem }')}
  insecure: ${svc(plain.url, '{ insecureSkipVerify: true }')}
routes:
  - { match: { pathPrefix: /with-ca }, proxy: { service: withCa } }
  - { match: { pathPrefix: /no-ca }, proxy: { service: noCa } }
  - { match: { pathPrefix: /sni }, proxy: { service: sni, preserveHost: true } }
  - { match: { pathPrefix: /wrong-name }, proxy: { service: wrongName } }
  - { match: { pathPrefix: /insecure }, proxy: { service: insecure } }
  - { match: { pathPrefix: /mtls-none }, proxy: { service: mtlsNoCert } }
  - { match: { pathPrefix: /mtls }, proxy: { service: mtls } }
  - match: { path: /agg-no-ca }
    aggregate: { parts: { p: { service: noCa, path: /x } } }
  - match: { path: /agg-mtls-none }
    aggregate: { parts: { p: { service: mtlsNoCert, path: /x } } }
  - match: { path: /translate-no-ca, methods: [GET] }
    translate:
      service: noCa
      legacy: { format: json, method: GET, path: /x }
      toLegacy: { x: { const: 1 } }
      fromLegacy: { expression: '$' }
`,
    );
  }, 60_000);
  afterAll(async () => {
    await gw?.stop();
    plain?.server.close();
    mtls?.server.close();
    dir?.cleanup();
  });

  it('reaches an origin signed by a private CA with tls.ca, verified against its IP', async () => {
    const r = await get(`${gw.url}/with-ca/x`);
    expect(r.status).toBe(200);
    // An IP address is never sent as SNI.
    expect(r.body.servername).toBeNull();
  });

  it('answers 502 TRELLIS_E_UPSTREAM_TLS "unknown CA" without tls.ca', async () => {
    const r = await get(`${gw.url}/no-ca/x`);
    expect(r.status).toBe(502);
    expect(r.body.code).toBe('TRELLIS_E_UPSTREAM_TLS');
    expect(String(r.body.detail)).toMatch(/unknown CA/);
  });

  it('aggregate parts and translate calls report a failed handshake as TRELLIS_E_UPSTREAM_TLS too, not "unreachable"', async () => {
    for (const [path, reason] of [
      ['/agg-no-ca', /unknown CA/],
      ['/agg-mtls-none', /certificate required/],
      ['/translate-no-ca', /unknown CA/],
    ] as const) {
      const r = await get(`${gw.url}${path}`);
      expect({ path, status: r.status, code: r.body.code }).toEqual({
        path,
        status: 502,
        code: 'TRELLIS_E_UPSTREAM_TLS',
      });
      expect(String(r.body.detail)).toMatch(reason);
      expect(String(r.body.detail)).toMatch(/the TLS handshake with https:\/\/127\.0\.0\.1:\d+ failed/);
    }
  });

  it('sends and verifies tls.servername, whatever Host the client sent (preserveHost)', async () => {
    const r = await request(`${gw.url}/sni/x`, { headers: { host: 'client-facing.example' } });
    const body = (await r.body.json()) as Record<string, unknown>;
    expect(r.statusCode).toBe(200);
    expect(body.servername).toBe('origin.test');
    expect(body.host).toBe('client-facing.example');
  });

  it('refuses a certificate that is not for tls.servername: "name mismatch"', async () => {
    const r = await get(`${gw.url}/wrong-name/x`);
    expect(r.status).toBe(502);
    expect(r.body.code).toBe('TRELLIS_E_UPSTREAM_TLS');
    expect(String(r.body.detail)).toMatch(/name mismatch/);
  });

  it('presents the client certificate to an origin that requires one (mTLS)', async () => {
    const r = await get(`${gw.url}/mtls/x`);
    expect(r.status).toBe(200);
    expect(r.body.clientCn).toBe('gateway-client');
  });

  it('answers 502 TRELLIS_E_UPSTREAM_TLS "certificate required" without cert/key', async () => {
    const r = await get(`${gw.url}/mtls-none/x`);
    expect(r.status).toBe(502);
    expect(r.body.code).toBe('TRELLIS_E_UPSTREAM_TLS');
    expect(String(r.body.detail)).toMatch(/certificate required: the upstream wants a client certificate/);
  });

  it('insecureSkipVerify reaches an unverified origin, and says INSECURE in the log at load', async () => {
    expect((await get(`${gw.url}/insecure/x`)).status).toBe(200);
    expect(gw.output()).toMatch(
      /INSECURE: service \\?"insecure\\?" does not verify its upstreams' TLS certificates/,
    );
  });

  it('refuses at load, with file:line:col, a key that is not its certificate and a missing CA file', async () => {
    const file = dir.write(
      'bad.yaml',
      `listen: { port: 0 }
services:
  a:
    upstreams: ['${mtls.url}']
    tls:
      cert: ./client.pem
      key: ${stranger.key}
  c:
    upstreams: ['${mtls.url}']
    tls: { ca: ./missing.pem }
routes:
  - { match: { pathPrefix: / }, proxy: { service: a } }
`,
    );
    const out = await runCli(['validate', file]);
    expect(out.code).not.toBe(0);
    const text = out.stdout + out.stderr;
    expect(text).toMatch(
      /bad\.yaml:7:\d+ services\.a\.tls\.key: client private key .* does not belong to the certificate/,
    );
    expect(text).toMatch(/bad\.yaml:10:\d+ services\.c\.tls\.ca: CA bundle .*missing\.pem does not exist/);
  });

  it('refuses tls: on a service whose upstreams are all http://', async () => {
    const file = dir.write(
      'plain.yaml',
      `listen: { port: 0 }
services:
  b:
    upstreams: [http://127.0.0.1:1]
    tls: { ca: ./ca.pem }
routes:
  - { match: { pathPrefix: / }, proxy: { service: b } }
`,
    );
    const out = await runCli(['validate', file]);
    expect(out.code).not.toBe(0);
    expect(out.stdout + out.stderr).toMatch(
      /plain\.yaml:5:\d+ services\.b\.tls: tls: applies to https:\/\/ upstreams, and every upstream of this service is http:\/\//,
    );
  });

  it('rejects a reload whose tls: names a file that is not PEM, and keeps serving', async () => {
    writeFileSync(`${dir.path}/not-pem.pem`, 'hello\n');
    const original = readFileSync(gw.file, 'utf8');
    writeFileSync(
      gw.file,
      original.replace(
        'withCa: { upstreams',
        "extra: { upstreams: ['https://127.0.0.1:1'], tls: { ca: ./not-pem.pem } }\n  withCa: { upstreams",
      ),
    );
    await gw.waitForOutput(/configuration rejected/);
    expect(gw.output()).toMatch(
      /gateway\.yaml:\d+:\d+ services\.extra\.tls\.ca: CA bundle .* is not a PEM certificate/,
    );
    expect((await get(`${gw.url}/with-ca/x`)).status).toBe(200);
    writeFileSync(gw.file, original);
  });

  it('picks up a rotated client certificate: a changed file makes a new pool', async () => {
    // The origin now trusts only a second CA; the gateway's files are rotated to match.
    const pki2 = createTestPki();
    const client2 = pki2.issue('client', { cn: 'rotated-client', client: true });
    const server = pki.issue('origin-b', { cn: 'origin.test', dns: ['origin.test'], ips: ['127.0.0.1'] });
    mtls.server.setSecureContext({
      cert: readFileSync(server.cert),
      key: readFileSync(server.key),
      ca: readFileSync(pki2.ca),
    });
    const before = await get(`${gw.url}/mtls/y`);
    // Kept-alive connections were made with the old certificate; a new one is refused.
    expect([200, 502]).toContain(before.status);
    copyFileSync(client2.cert, `${dir.path}/client.pem`);
    copyFileSync(client2.key, `${dir.path}/client.key`);
    await waitUntil(
      async () => {
        const r = await get(`${gw.url}/mtls/z`);
        return r.status === 200 && r.body.clientCn === 'rotated-client' ? r : undefined;
      },
      'the rotated client certificate in use',
      15_000,
    );
  });
});
