import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { z } from 'zod';
import { type ConfigIssue, configIssueAt } from '../../core/config.js';
import { TrellisError } from '../../core/errors.js';

/**
 * TLS origination to `https://` upstreams: `services.<name>.tls`. File paths are relative to the
 * configuration file's folder, like every other file option. Without this block an https upstream
 * is verified against Node's bundled public CAs with SNI = the upstream's host.
 */
export const upstreamTlsSchema = z
  .strictObject({
    /** PEM CA bundle the upstream's certificate must chain to (instead of the public CAs). */
    ca: z.string().min(1).optional(),
    /** PEM client certificate (chain) presented to the upstream: mutual TLS. With `key`. */
    cert: z.string().min(1).optional(),
    /** PEM private key of `cert`. */
    key: z.string().min(1).optional(),
    /** SNI name sent and the name the certificate is verified for (default: the upstream's host). */
    servername: z.string().min(1).optional(),
    /** Oldest TLS version offered; never below 1.2. */
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    /** Do not verify the upstream's certificate at all. An escape hatch, logged loudly at load. */
    insecureSkipVerify: z.boolean().default(false),
  })
  .superRefine((t, ctx) => {
    if ((t.cert === undefined) !== (t.key === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: `a client certificate needs both cert and key: ${t.cert === undefined ? 'key is given without cert' : 'cert is given without key'}; give both, or neither`,
      });
    }
  });

export type UpstreamTlsDef = z.output<typeof upstreamTlsSchema>;

/** A file a `tls:` block names: which field, and its absolute path. */
export interface UpstreamTlsFile {
  field: 'ca' | 'cert' | 'key';
  file: string;
  what: string;
}

const WHAT = { ca: 'CA bundle', cert: 'client certificate', key: 'client private key' } as const;

/** The files a `tls:` block refers to, absolute (relative ones start at `baseDir`). */
export function upstreamTlsFiles(tls: UpstreamTlsDef | undefined, baseDir: string): UpstreamTlsFile[] {
  if (tls === undefined) return [];
  const out: UpstreamTlsFile[] = [];
  for (const field of ['ca', 'cert', 'key'] as const) {
    const value = tls[field];
    if (value !== undefined) {
      out.push({ field, file: isAbsolute(value) ? value : resolve(baseDir, value), what: WHAT[field] });
    }
  }
  return out;
}

/** A problem with one field of a `tls:` block, for a file:line:col message at that field. */
export interface UpstreamTlsProblem {
  field: 'ca' | 'cert' | 'key';
  message: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

function certificatesIn(pem: string): X509Certificate[] {
  const blocks = [...pem.matchAll(PEM_BLOCK)].filter(
    (m) => m[1] === 'CERTIFICATE' || m[1] === 'TRUSTED CERTIFICATE',
  );
  return blocks.map((m) => new X509Certificate(m[0]));
}

/** When a certificate a `tls:` block names stops being valid (the CA bundle: its first to go). */
export interface TlsExpiry {
  field: 'ca' | 'cert';
  file: string;
  /** The certificate's notAfter, ms since the epoch. */
  notAfter: number;
}

/** A configured CA or client certificate expiring within this many days is warned about at load. */
export const TLS_EXPIRY_WARNING_DAYS = 14;

/** The expiries of `material` within `TLS_EXPIRY_WARNING_DAYS` of `now` (or past), for warnings. */
export function expiringSoon(material: UpstreamTlsMaterial, now = Date.now()): TlsExpiry[] {
  return material.expiries.filter((e) => e.notAfter - now < TLS_EXPIRY_WARNING_DAYS * 86_400_000);
}

/** What the block's files hold, read and checked: PEM that parses, a key that matches its cert. */
export interface UpstreamTlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Every file read, absolute. */
  files: string[];
  /** A digest of the block and the files' contents: a changed file makes a new pool. */
  fingerprint: string;
  /** When the client certificate and the CA bundle expire. */
  expiries: TlsExpiry[];
}

/**
 * Reads and checks the files of a `tls:` block. Returns the material, or every problem found
 * (a missing file, text that is not PEM, a key that does not belong to its certificate).
 */
export function readUpstreamTls(
  tls: UpstreamTlsDef,
  baseDir: string,
):
  | { material: UpstreamTlsMaterial; problems: [] }
  | { material?: undefined; problems: UpstreamTlsProblem[] } {
  const problems: UpstreamTlsProblem[] = [];
  const contents: Partial<Record<'ca' | 'cert' | 'key', Buffer>> = {};
  const files = upstreamTlsFiles(tls, baseDir);
  for (const { field, file, what } of files) {
    try {
      if (statSync(file).isDirectory()) {
        problems.push({ field, message: `${what} ${file} is a folder, not a file` });
        continue;
      }
      contents[field] = readFileSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push({
        field,
        message:
          code === 'ENOENT' || code === 'ENOTDIR'
            ? `${what} ${file} does not exist (relative paths start at the configuration file's folder)`
            : `${what} ${file} cannot be read (${code ?? String(err)}): check its permissions`,
      });
    }
  }
  const fileOf = (field: 'ca' | 'cert' | 'key') => files.find((f) => f.field === field)!.file;
  let leaf: X509Certificate | undefined;
  const expiries: TlsExpiry[] = [];
  for (const field of ['ca', 'cert'] as const) {
    const buf = contents[field];
    if (buf === undefined) continue;
    try {
      const certs = certificatesIn(buf.toString('utf8'));
      if (certs.length === 0) throw new Error('no -----BEGIN CERTIFICATE----- block');
      // The leaf of a client chain; the first CA of a bundle to expire.
      const notAfter =
        field === 'cert'
          ? Date.parse(certs[0]!.validTo)
          : Math.min(...certs.map((c) => Date.parse(c.validTo)));
      expiries.push({ field, file: fileOf(field), notAfter });
      if (field === 'cert') {
        leaf = certs[0];
        // Every handshake would fail with it: refused at load rather than as 502s at run time.
        if (notAfter <= Date.now()) {
          problems.push({
            field,
            message: `client certificate ${fileOf(field)} expired on ${new Date(notAfter).toISOString()}: renew it (or remove tls.cert and tls.key)`,
          });
        }
      }
    } catch (err) {
      problems.push({
        field,
        message: `${WHAT[field]} ${fileOf(field)} is not a PEM certificate: ${(err as Error).message}`,
      });
      delete contents[field];
    }
  }
  if (contents.key !== undefined) {
    try {
      const key = createPrivateKey(contents.key);
      if (leaf !== undefined && !leaf.checkPrivateKey(key)) {
        problems.push({
          field: 'key',
          message: `client private key ${fileOf('key')} does not belong to the certificate ${fileOf('cert')}`,
        });
      }
    } catch (err) {
      problems.push({
        field: 'key',
        message: `client private key ${fileOf('key')} is not a PEM private key: ${(err as Error).message}`,
      });
    }
  }
  if (problems.length > 0) return { problems };
  const hash = createHash('sha256').update(JSON.stringify(tls));
  for (const field of ['ca', 'cert', 'key'] as const)
    hash.update(`\0${field}\0`).update(contents[field] ?? '');
  return {
    material: { ...contents, files: files.map((f) => f.file), fingerprint: hash.digest('hex'), expiries },
    problems: [],
  };
}

/** Reads a `tls:` block's files, throwing TRELLIS_E_UPSTREAM_TLS_INVALID naming every problem. */
export function loadUpstreamTls(service: string, tls: UpstreamTlsDef, baseDir: string): UpstreamTlsMaterial {
  const read = readUpstreamTls(tls, baseDir);
  if (read.material) return read.material;
  throw new TrellisError(
    'TRELLIS_E_UPSTREAM_TLS_INVALID',
    read.problems.map((p) => `service ${service}: tls.${p.field}: ${p.message}`).join('\n'),
  );
}

/**
 * Node `tls.connect` options for one https origin. `servername` is both the SNI name and the
 * name the certificate is checked for; an IP address is never sent as SNI (RFC 6066) and is
 * verified against the certificate's IP addresses.
 */
export function tlsConnectOptions(
  tls: UpstreamTlsDef | undefined,
  material: UpstreamTlsMaterial | undefined,
  origin: URL,
): ConnectionOptions & { servername?: string } {
  const host = origin.hostname.replace(/^\[|\]$/g, '');
  const name = tls?.servername ?? (isIP(host) === 0 ? host : undefined);
  return {
    ...(material?.ca ? { ca: material.ca } : {}),
    ...(material?.cert ? { cert: material.cert } : {}),
    ...(material?.key ? { key: material.key } : {}),
    ...(name === undefined ? {} : { servername: name }),
    minVersion: tls?.minVersion ?? 'TLSv1.2',
    rejectUnauthorized: tls?.insecureSkipVerify !== true,
  };
}

const TLS_REASONS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unknown CA: the certificate is not signed by a trusted CA (set tls.ca)',
  UNABLE_TO_GET_ISSUER_CERT: 'unknown CA: the certificate is not signed by a trusted CA (set tls.ca)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown CA: the certificate is not signed by a trusted CA (set tls.ca)',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown CA: a self-signed certificate in the chain (set tls.ca)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'unknown CA: the certificate is self-signed (set tls.ca)',
  ERR_TLS_CERT_ALTNAME_INVALID:
    'name mismatch: the certificate is not for the expected name (see tls.servername)',
  CERT_HAS_EXPIRED: 'the certificate has expired',
  CERT_NOT_YET_VALID: 'the certificate is not yet valid',
  CERT_REVOKED: 'the certificate is revoked',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    'certificate required: the upstream wants a client certificate (set tls.cert and tls.key)',
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE:
    'handshake failure: no protocol version, cipher or client certificate both sides accept',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'the upstream does not trust the client certificate (unknown CA)',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'the upstream refused the client certificate (bad certificate)',
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: 'no TLS version both sides accept (see tls.minVersion)',
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'no TLS version both sides accept (see tls.minVersion)',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the upstream does not speak TLS on this port (an http:// upstream?)',
  ERR_SSL_PACKET_LENGTH_TOO_LONG: 'the upstream does not speak TLS on this port (an http:// upstream?)',
};

/**
 * Why a TLS handshake with an upstream failed, in words a user can act on, or undefined when
 * `err` is not a TLS failure. Looks through undici's wrapping (`cause`).
 */
export function tlsFailureReason(err: unknown, https = false): string | undefined {
  // TLS 1.3: a server that wants a client certificate says so after the client considers the
  // handshake done, and undici reports only that the socket closed. A fresh https connection
  // (nothing ever read on it) closed before any answer is, in practice, that refusal.
  const e0 = err as { code?: unknown; socket?: { bytesRead?: unknown } } | undefined;
  if (https && e0?.code === 'UND_ERR_SOCKET' && e0.socket?.bytesRead === 0) {
    return 'certificate required (most likely): the upstream closed the connection right after the handshake, before any answer; it wants a client certificate it trusts (set tls.cert and tls.key)';
  }
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; depth++) {
    const code = typeof e.code === 'string' ? e.code : undefined;
    if (code !== undefined) {
      const known = TLS_REASONS[code];
      if (known !== undefined) return known;
      if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return `TLS handshake failed (${code})`;
    }
    e = e.cause as typeof e;
  }
  return undefined;
}

/**
 * file:line:col issues for the `tls:` blocks of the given services (`path` is where each service
 * definition sits in the file, like `['services', 'catalog']`): files that are missing, not PEM,
 * or a key that does not match its certificate. Empty when every block is usable.
 */
export function serviceTlsIssues(
  services: Iterable<{ path: (string | number)[]; tls: UpstreamTlsDef | undefined }>,
  text: string,
  label: string,
  baseDir: string,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const { path, tls } of services) {
    if (tls === undefined) continue;
    for (const p of readUpstreamTls(tls, baseDir).problems) {
      issues.push(configIssueAt(text, label, [...path, 'tls', p.field], p.message));
    }
  }
  return issues;
}
