import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../core/logger.js';
import { createTestPki } from '../../tls/testing.js';
import { createServicePool } from '../pool.js';
import { serviceSchema } from '../schema.js';
import { startDnsServer, type TestDnsServer } from './testing.js';

/** An https upstream found by address keeps the DNS name for SNI and certificate verification. */

const pki = createTestPki();
const { cert, key } = pki.issue('api', { cn: 'api.internal', dns: ['api.internal'] });
let dns: TestDnsServer;
let port: number;
let server: ReturnType<typeof createServer>;

beforeAll(async () => {
  server = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) =>
    res.end(String((req.socket as TLSSocket & { servername?: string }).servername)),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  dns = await startDnsServer({ 'api.internal': [{ type: 'A', address: '127.0.0.1', ttl: 60 }] });
});
afterAll(async () => {
  await dns.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

async function call(tls: Record<string, unknown>): Promise<string> {
  const pool = createServicePool(
    'api',
    serviceSchema.parse({
      discovery: { dns: { name: 'api.internal', port, scheme: 'https', servers: [dns.address] } },
      tls: { ca: pki.ca, ...tls },
    }),
    { logger: silentLogger() },
  );
  try {
    await pool.settled;
    const u = pool.pick()!;
    expect(u.id).toBe(`https://127.0.0.1:${port}`);
    const res = await u.dispatcher.request({ origin: u.origin, path: '/', method: 'GET' });
    return await res.body.text();
  } finally {
    await pool.close();
  }
}

describe('https upstreams from DNS', () => {
  it('send the DNS name as SNI and verify the certificate for it, not for the address', async () => {
    expect(await call({})).toBe('api.internal');
  });

  it('use tls.servername instead when it is set', async () => {
    await expect(call({ servername: 'other.internal' })).rejects.toThrow(/altnames|other\.internal/i);
  });
});
