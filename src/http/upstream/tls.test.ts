import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../core/config.js';
import { createTestPki } from '../tls/testing.js';
import { serviceSchema } from './schema.js';
import {
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
