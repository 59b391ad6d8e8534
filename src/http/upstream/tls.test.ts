import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../core/config.js';
import { createTestPki } from '../tls/testing.js';
import { createServicePool } from './pool.js';
import { serviceSchema } from './schema.js';
import {
  expiringSoon,
  loadUpstreamTls,
  readUpstreamTls,
  serviceTlsIssues,
  tlsConnectOptions,
  tlsFailureReason,
  upstreamTlsSchema,
} from './tls.js';

function problems(yaml: string): string {
  try {
    parseConfig(yaml, serviceSchema, 'svc.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the service to be rejected');
}

describe('services.<name>.tls', () => {
  it('needs cert and key together, and an https:// upstream', () => {
    expect(problems('upstreams: [https://a.test]\ntls: { cert: c.pem }')).toMatch(
      /svc\.yaml:2:\d+ tls: a client certificate needs both cert and key: cert is given without key/,
    );
    expect(problems('upstreams: [http://a.test, { url: http://b.test }]\ntls: { ca: ca.pem }')).toMatch(
      /svc\.yaml:2:\d+ tls: tls: applies to https:\/\/ upstreams, and every upstream of this service is http:\/\//,
    );
    // A mixed service is fine: the block applies to its https:// upstreams.
    expect(
      parseConfig('upstreams: [http://a.test, https://b.test]\ntls: { ca: ca.pem }', serviceSchema).tls,
    ).toEqual({
      ca: 'ca.pem',
      minVersion: 'TLSv1.2',
      insecureSkipVerify: false,
    });
  });

  it('checks the files: missing, not PEM, a key that is not the certificate; a fingerprint that follows their contents', () => {
    const pki = createTestPki();
    const a = pki.issue('a', { cn: 'a', client: true });
    const b = pki.issue('b', { cn: 'b', client: true });
    writeFileSync(join(pki.dir, 'junk.pem'), 'not a certificate\n');
    const text =
      'services:\n  s:\n    upstreams: [https://x.test]\n    tls:\n      ca: junk.pem\n      cert: a.pem\n      key: b.key\n';
    const def = upstreamTlsSchema.parse({ ca: 'junk.pem', cert: 'a.pem', key: 'b.key' });
    const issues = serviceTlsIssues([{ path: ['services', 's'], tls: def }], text, 'g.yaml', pki.dir);
    expect(issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`)).toEqual([
      expect.stringMatching(/^5:11 services\.s\.tls\.ca: CA bundle .*junk\.pem is not a PEM certificate/),
      expect.stringMatching(
        /^7:12 services\.s\.tls\.key: client private key .*b\.key does not belong to the certificate/,
      ),
    ]);
    const missing = readUpstreamTls(upstreamTlsSchema.parse({ ca: 'nope.pem' }), pki.dir);
    expect(missing.problems[0]?.message).toMatch(
      /nope\.pem does not exist \(relative paths start at the configuration file's folder\)/,
    );

    const good = upstreamTlsSchema.parse({ ca: 'ca.pem', cert: 'a.pem', key: 'a.key' });
    const first = readUpstreamTls(good, pki.dir).material!;
    expect(first.files).toEqual([join(pki.dir, 'ca.pem'), a.cert, a.key]);
    // A rotated file (same path, new bytes) changes the fingerprint: the pool is not reused.
    copyFileSync(b.cert, a.cert);
    copyFileSync(b.key, a.key);
    expect(readUpstreamTls(good, pki.dir).material!.fingerprint).not.toBe(first.fingerprint);
  });

  it('refuses an expired client certificate at load; warns (log, admin status, metric) about one expiring soon', async () => {
    const pki = createTestPki();
    const old = pki.issue('old', { cn: 'old', client: true, expired: true });
    const expired = readUpstreamTls(upstreamTlsSchema.parse({ cert: old.cert, key: old.key }), pki.dir);
    expect(expired.problems.map((p) => `${p.field}: ${p.message}`)).toEqual([
      expect.stringMatching(
        /^cert: client certificate .*old\.pem expired on 2020-01-02T00:00:00\.000Z: renew it/,
      ),
    ]);
    expect(() =>
      loadUpstreamTls('pay', upstreamTlsSchema.parse({ cert: old.cert, key: old.key }), pki.dir),
    ).toThrow(expect.objectContaining({ code: 'TRELLIS_E_UPSTREAM_TLS_INVALID' }));

    // The test PKI's certificates live two days: well within the 14-day warning.
    const fresh = pki.issue('fresh', { cn: 'fresh', client: true });
    const def = serviceSchema.parse({
      upstreams: ['https://127.0.0.1:1'],
      tls: { ca: pki.ca, cert: fresh.cert, key: fresh.key },
    });
    const material = loadUpstreamTls('pay', def.tls!, pki.dir);
    expect(expiringSoon(material).map((e) => e.field)).toEqual(['ca', 'cert']);
    expect(expiringSoon(material, Date.now() - 30 * 86_400_000)).toEqual([]);
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const registry = new Registry();
    const pool = createServicePool('pay', def, { logger, metrics: registry, tls: material });
    try {
      expect(lines.join('')).toMatch(/the client certificate .*fresh\.pem expires in [01] days: renew it/);
      expect(lines.join('')).toMatch(/the CA bundle .*ca\.pem expires in [01] days/);
      expect(pool.status().tls).toEqual([
        { field: 'ca', file: pki.ca, notAfter: expect.any(String), daysLeft: expect.any(Number) },
        { field: 'cert', file: fresh.cert, notAfter: expect.any(String), daysLeft: expect.any(Number) },
      ]);
      const metric = await registry.getSingleMetricAsString('trellis_upstream_tls_expiry_seconds');
      const seconds = Number(metric.match(/field="cert"\} (-?\d+)/)?.[1]);
      expect(seconds).toBeGreaterThan(86_400);
      expect(seconds).toBeLessThanOrEqual(2 * 86_400);
    } finally {
      await pool.close();
    }
  });

  it('connect options: SNI is the host name, never an IP, unless servername is set', () => {
    const def = upstreamTlsSchema.parse({ insecureSkipVerify: true, minVersion: 'TLSv1.3' });
    expect(tlsConnectOptions(def, undefined, new URL('https://api.test:8443'))).toEqual({
      servername: 'api.test',
      minVersion: 'TLSv1.3',
      rejectUnauthorized: false,
    });
    expect(tlsConnectOptions(undefined, undefined, new URL('https://10.0.0.1'))).toEqual({
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
    });
    const named = upstreamTlsSchema.parse({ servername: 'pay.internal' });
    expect(tlsConnectOptions(named, undefined, new URL('https://[::1]:8443')).servername).toBe(
      'pay.internal',
    );
  });

  it('names the reason of a failed handshake, through undici wrapping', () => {
    expect(tlsFailureReason({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })).toMatch(/^unknown CA/);
    expect(tlsFailureReason({ code: 'X', cause: { code: 'ERR_TLS_CERT_ALTNAME_INVALID' } })).toMatch(
      /^name mismatch/,
    );
    expect(tlsFailureReason({ code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' })).toMatch(
      /^certificate required/,
    );
    expect(tlsFailureReason({ code: 'ERR_SSL_SOMETHING_NEW' })).toBe(
      'TLS handshake failed (ERR_SSL_SOMETHING_NEW)',
    );
    expect(tlsFailureReason({ code: 'ECONNREFUSED' })).toBeUndefined();
    const closed = { code: 'UND_ERR_SOCKET', socket: { bytesRead: 0 } };
    expect(tlsFailureReason(closed)).toBeUndefined();
    expect(tlsFailureReason(closed, true)).toMatch(/^certificate required \(most likely\)/);
    expect(tlsFailureReason({ code: 'UND_ERR_SOCKET', socket: { bytesRead: 120 } }, true)).toBeUndefined();
  });
});
