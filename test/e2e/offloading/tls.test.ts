import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, type TestPki } from '../../../src/http/tls/testing.js';
import {
  freePort,
  type GatewayProcess,
  type Origin,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
} from '../support/index.js';

describe('trellis gateway: HTTPS listener with mTLS and an HTTP redirect', () => {
  let dir: TempDir;
  let origin: Origin;
  let gw: GatewayProcess;
  let pki: TestPki;
  let client: { cert: string; key: string };
  let redirectPort: number;

  beforeAll(async () => {
    dir = tempDir();
    pki = createTestPki();
    const server = pki.issue('gw', { cn: 'gw.test', dns: ['gw.test'] });
    client = pki.issue('client', { cn: 'billing', client: true });
    origin = await startOrigin('origin');
    redirectPort = await freePort();
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen:
  port: 0
  host: 127.0.0.1
  tls:
    cert: ${server.cert}
    key: ${server.key}
    clientCa: ${pki.ca}
    requireClientCert: false
    redirectHttp: { port: ${redirectPort}, host: 127.0.0.1 }
services:
  origin: { upstreams: ['${origin.url}'] }
routes:
  - match: { pathPrefix: / }
    proxy: { service: origin }
`,
    );
  });
  afterAll(async () => {
    await gw?.stop();
    await origin?.close();
    dir?.cleanup();
  });

  it('serves HTTPS, passes a verified client identity and drops a forged one', async () => {
    const base = `https://127.0.0.1:${gw.ports.main}`;
    const withCert = new Agent({
      connect: {
        ca: readFileSync(pki.ca),
        cert: readFileSync(client.cert),
        key: readFileSync(client.key),
        servername: 'gw.test',
      },
    });
    const r = await request(`${base}/a`, {
      dispatcher: withCert,
      headers: { 'x-client-cert': 'Hash=forged' },
    });
    const seen = (await r.body.json()) as { headers: Record<string, string> };
    expect(r.statusCode).toBe(200);
    expect(seen.headers['x-client-cert']).toMatch(/^Hash=[0-9a-f]{64};Subject="CN=billing"$/);
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    await withCert.close();
    const anonymous = new Agent({ connect: { ca: readFileSync(pki.ca), servername: 'gw.test' } });
    const r2 = await request(`${base}/b`, {
      dispatcher: anonymous,
      headers: { 'x-client-cert': 'Hash=forged' },
    });
    const seen2 = (await r2.body.json()) as { headers: Record<string, string> };
    expect(seen2.headers['x-client-cert']).toBeUndefined();
    await anonymous.close();
  });

  it('redirects plain HTTP to HTTPS', async () => {
    const r = await request(`http://127.0.0.1:${redirectPort}/path?q=1`, { headers: { host: 'gw.test' } });
    await r.body.text();
    expect(r.statusCode).toBe(308);
    expect(r.headers.location).toBe(`https://gw.test:${gw.ports.main}/path?q=1`);
  });
});
