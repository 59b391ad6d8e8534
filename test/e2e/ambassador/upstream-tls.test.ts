import { copyFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:https';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki } from '../../../src/http/tls/testing.js';
import { httpsOrigin } from '../support/https-origin.js';
import { type AmbassadorProcess, startAmbassadorCli, type TempDir, tempDir } from '../support/index.js';

// The gateway's `tls:` block, in an ambassador remote's `service:`: private CA, SNI and mTLS.
describe('trellis ambassador: TLS origination to an https remote (private CA, SNI, mTLS)', () => {
  let dir: TempDir;
  let amb: AmbassadorProcess;
  let origin: { server: Server; url: string };
  let ports: Record<string, number>;

  beforeAll(async () => {
    dir = tempDir();
    const pki = createTestPki();
    const server = pki.issue('payments', { cn: 'payments.internal', dns: ['payments.internal'] });
    const client = pki.issue('checkout', { cn: 'checkout', client: true });
    origin = await httpsOrigin({ ...server, ca: pki.ca, requireClientCert: true });
    copyFileSync(pki.ca, `${dir.path}/ca.pem`);
    copyFileSync(client.cert, `${dir.path}/checkout.pem`);
    copyFileSync(client.key, `${dir.path}/checkout.key`);
    const file = `${dir.path}/ambassador.yaml`;
    writeFileSync(
      file,
      `remotes:
  payments:
    listen: { port: 0 }
    service:
      upstreams: ['${origin.url}']
      tls: { ca: ./ca.pem, cert: ./checkout.pem, key: ./checkout.key, servername: payments.internal }
  anonymous:
    listen: { port: 0 }
    service:
      upstreams: ['${origin.url}']
      retry: { attempts: 1 }
      tls: { ca: ./ca.pem, servername: payments.internal }
`,
    );
    amb = await startAmbassadorCli(file);
    ports = amb.ports;
  }, 30_000);

  afterAll(async () => {
    await amb?.stop();
    origin?.server.close();
    dir?.cleanup();
  });

  it('calls the remote over mTLS with the configured SNI name', async () => {
    const r = await request(`http://127.0.0.1:${ports.payments}/v1/charges`);
    const body = (await r.body.json()) as Record<string, unknown>;
    expect(r.statusCode).toBe(200);
    expect(body.servername).toBe('payments.internal');
    expect(body.clientCn).toBe('checkout');
  });

  it('answers 502 TRELLIS_E_UPSTREAM_TLS when the remote wants a client certificate it was not given', async () => {
    const r = await request(`http://127.0.0.1:${ports.anonymous}/v1/charges`);
    const body = (await r.body.json()) as Record<string, unknown>;
    expect(r.statusCode).toBe(502);
    expect(body.code).toBe('TRELLIS_E_UPSTREAM_TLS');
    expect(String(body.detail)).toMatch(/certificate required: the upstream wants a client certificate/);
  });
});
