import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { TrellisError } from '../../core/errors.js';
import type { TlsConfig } from './schema.js';

/** Every certificate loaded from disk, ready for the server and its SNI callback. */
export interface CertificateSet {
  /** Options for the default context (server.setSecureContext). */
  defaults: { cert: Buffer; key: Buffer; ca?: Buffer; minVersion: 'TLSv1.2' | 'TLSv1.3' };
  /** Exact server names, lower case. */
  exact: Map<string, SecureContext>;
  /** `*.example.com` certificates by their parent domain (`example.com`). */
  wildcard: Map<string, SecureContext>;
  /** Every file read, absolute, for the watcher. */
  files: string[];
}

function read(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TrellisError('TRELLIS_E_TLS_FILE', `cannot read ${path}: check the path and permissions`, {
      cause: err,
    });
  }
}

/** DNS names a certificate is for, from its subjectAltName. */
function dnsNames(pem: Buffer): string[] {
  const san = new X509Certificate(pem).subjectAltName ?? '';
  return san
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
}

/** Reads every certificate and key; throws TRELLIS_E_TLS_FILE / TRELLIS_E_TLS_INVALID on a bad one. */
export function loadCertificates(tls: TlsConfig, baseDir: string): CertificateSet {
  const files: string[] = [];
  const load = (p: string) => {
    const abs = resolve(baseDir, p);
    files.push(abs);
    return read(abs);
  };
  const ca = tls.clientCa === undefined ? undefined : load(tls.clientCa);
  const context = (cert: Buffer, key: Buffer, label: string) => {
    try {
      return createSecureContext({ cert, key, ca, minVersion: tls.minVersion });
    } catch (err) {
      throw new TrellisError(
        'TRELLIS_E_TLS_INVALID',
        `the certificate or key for ${label} is not valid PEM or they do not match: ${(err as Error).message}`,
        { cause: err },
      );
    }
  };
  const exact = new Map<string, SecureContext>();
  const wildcard = new Map<string, SecureContext>();
  let defaults: CertificateSet['defaults'] | undefined;
  if (tls.cert !== undefined && tls.key !== undefined) {
    const cert = load(tls.cert);
    const key = load(tls.key);
    context(cert, key, tls.cert);
    defaults = { cert, key, ca, minVersion: tls.minVersion };
  }
  for (const c of tls.certificates) {
    const cert = load(c.cert);
    const key = load(c.key);
    const ctx = context(cert, key, c.cert);
    const names = c.serverNames?.map((n) => n.toLowerCase()) ?? dnsNames(cert);
    for (const name of names) {
      if (name.startsWith('*.')) wildcard.set(name.slice(2), ctx);
      else exact.set(name, ctx);
    }
    defaults ??= { cert, key, ca, minVersion: tls.minVersion };
  }
  return { defaults: defaults!, exact, wildcard, files };
}

/** The context for an SNI name: exact, then a wildcard one label deep, else the default. */
export function contextFor(set: CertificateSet, servername: string): SecureContext | undefined {
  const name = servername.toLowerCase();
  const hit = set.exact.get(name);
  if (hit) return hit;
  const dot = name.indexOf('.');
  return dot === -1 ? undefined : set.wildcard.get(name.slice(dot + 1));
}
