import { copyFileSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { connect, type PeerCertificate } from 'node:tls';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTlsServer, type TlsServer, tlsSchema } from './index.js';
import { createTestPki, type TestPki } from './testing.js';

let pki: TestPki;
let running: TlsServer | undefined;
beforeAll(() => {
  pki = createTestPki();
});
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }));
afterEach(async () => {
  if (running) {
    running.server.closeAllConnections();
    await new Promise((r) => running!.server.close(r));
    await running.close();
  }
  running = undefined;
});

/** Starts an HTTPS server that echoes the identity header it received. */
async function start(raw: Record<string, unknown>, opts: Parameters<typeof createTlsServer>[3] = {}) {
  const tls = tlsSchema.parse(raw);
  running = createTlsServer(
    tls,
    {},
    (req, res) => res.end(String(req.headers['x-client-cert'] ?? 'none')),
    opts,
  );
  await new Promise<void>((r) => running!.server.listen(0, '127.0.0.1', r));
  return (running.server.address() as AddressInfo).port;
}

/** Handshakes with `servername` and returns the certificate the server chose. */
function handshake(
  port: number,
  opts: { servername?: string; maxVersion?: 'TLSv1.1' | 'TLSv1.2'; cert?: Buffer; key?: Buffer } = {},
) {
  return new Promise<{ cert: PeerCertificate; protocol: string | null }>((resolve, reject) => {
    const s = connect({
      port,
      host: '127.0.0.1',
      ca: readFileSync(pki.ca),
      rejectUnauthorized: false,
      ...opts,
    });
    s.once('secureConnect', () => {
      const out = { cert: s.getPeerCertificate(), protocol: s.getProtocol() };
      s.end();
      resolve(out);
    });
    s.once('error', reject);
  });
}

describe('TLS listener', () => {
  it('chooses the certificate by SNI (exact and wildcard names) with a default for the rest', async () => {
    const shop = pki.issue('shop', { cn: 'shop.test', dns: ['shop.test'] });
    const api = pki.issue('api', { cn: 'api', dns: ['*.api.test'] });
    const port = await start({ cert: shop.cert, key: shop.key, certificates: [api, shop] });
    expect((await handshake(port, { servername: 'shop.test' })).cert.subject.CN).toBe('shop.test');
    expect((await handshake(port, { servername: 'eu.api.test' })).cert.subject.CN).toBe('api');
    expect((await handshake(port, { servername: 'unknown.test' })).cert.subject.CN).toBe('shop.test');
  });

  it('refuses TLS 1.1 and below', async () => {
    const c = pki.issue('min', { cn: 'min.test', dns: ['min.test'] });
    const port = await start({ cert: c.cert, key: c.key });
    expect((await handshake(port, { servername: 'min.test' })).protocol).toMatch(/TLSv1\.[23]/);
    await expect(handshake(port, { servername: 'min.test', maxVersion: 'TLSv1.1' })).rejects.toThrow();
  });

  it('reloads a changed certificate without a restart', async () => {
    const first = pki.issue('live-a', { cn: 'first', dns: ['live.test'] });
    const second = pki.issue('live-b', { cn: 'second', dns: ['live.test'] });
    const live = pki.issue('live', { cn: 'first', dns: ['live.test'] });
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    let reloads = 0;
    const port = await start({ cert: live.cert, key: live.key }, { onReload: () => reloads++ });
    expect((await handshake(port)).cert.subject.CN).toBe('first');
    copyFileSync(second.key, live.key);
    copyFileSync(second.cert, live.cert);
    const deadline = Date.now() + 5000;
    let cn = 'first';
    while (cn !== 'second' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      cn = String((await handshake(port)).cert.subject.CN);
    }
    expect(cn).toBe('second');
    expect(reloads).toBeGreaterThan(0);
  });

  it('mTLS: refuses clients without a valid certificate; passes a verified identity, never a forged one', async () => {
    const server = pki.issue('mtls', { cn: 'mtls.test', dns: ['mtls.test'] });
    const client = pki.issue('client', { cn: 'orders-service', client: true });
    const port = await start({ ...server, clientCa: pki.ca });
    await expect(
      new Promise((resolve, reject) => {
        const s = connect({ port, host: '127.0.0.1', ca: readFileSync(pki.ca), servername: 'mtls.test' });
        s.once('secureConnect', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
        s.once('data', resolve);
        s.once('error', reject);
      }),
    ).rejects.toThrow();
    const { Agent } = await import('undici');
    const agent = new Agent({
      connect: {
        ca: readFileSync(pki.ca),
        cert: readFileSync(client.cert),
        key: readFileSync(client.key),
        servername: 'mtls.test',
      },
    });
    const r = await request(`https://127.0.0.1:${port}/`, {
      dispatcher: agent,
      headers: { 'x-client-cert': 'Hash=forged;Subject="CN=admin"' },
    });
    const identity = await r.body.text();
    expect(identity).toMatch(/^Hash=[0-9a-f]{64};Subject="CN=orders-service"$/);
    await agent.close();
  });

  it('without mTLS a client-sent identity header is removed', async () => {
    const c = pki.issue('plain', { cn: 'plain.test', dns: ['plain.test'] });
    const port = await start({ cert: c.cert, key: c.key });
    const { Agent } = await import('undici');
    const agent = new Agent({ connect: { ca: readFileSync(pki.ca), servername: 'plain.test' } });
    const r = await request(`https://127.0.0.1:${port}/`, {
      dispatcher: agent,
      headers: { 'x-client-cert': 'Hash=forged' },
    });
    expect(await r.body.text()).toBe('none');
    await agent.close();
  });

  it('redirects plain HTTP to HTTPS with 308, refusing crafted Host values', async () => {
    const c = pki.issue('redir', { cn: 'redir.test', dns: ['redir.test'] });
    await start({ cert: c.cert, key: c.key, redirectHttp: { port: 0, host: '127.0.0.1' } });
    await running!.listenRedirect(8443);
    const { port } = running!.redirectServer!.address() as AddressInfo;
    const r = await request(`http://127.0.0.1:${port}/a/b?x=1`, { headers: { host: 'shop.test:80' } });
    await r.body.text();
    expect(r.statusCode).toBe(308);
    expect(r.headers.location).toBe('https://shop.test:8443/a/b?x=1');
    const evil = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'evil.test/@x' } });
    await evil.body.text();
    expect(evil.statusCode).toBe(400);
  });

  it('validates the configuration and reports unreadable or bad files', async () => {
    expect(() => tlsSchema.parse({ cert: 'a.pem' })).toThrow(/both cert and key/);
    expect(() => tlsSchema.parse({})).toThrow(/at least one/);
    expect(() => tlsSchema.parse({ cert: 'a', key: 'b', minVersion: 'TLSv1.1' })).toThrow();
    await expect(start({ cert: '/nonexistent.pem', key: '/nonexistent.key' })).rejects.toThrow(
      /TRELLIS_E_TLS_FILE|cannot read/,
    );
    await expect(start({ cert: pki.ca, key: pki.ca })).rejects.toThrow(/not valid PEM|do not match/);
  });
});
