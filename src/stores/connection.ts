import { TrellisError } from '../core/errors.js';

/** A store URL with its password hidden, for messages and logs. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return raw.replace(/:\/\/([^:/@]+):[^@]*@/, '://$1:***@');
  }
}

/** The scheme of a store URL (`memory`, `sqlite`, `postgres`, …), validated against `allowed`. */
export function schemeOf(raw: string, block: string, allowed: readonly string[]): string {
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(raw ?? '');
  const scheme = m?.[1]
    ?.toLowerCase()
    .replace(/^postgresql$/, 'postgres')
    .replace(/^rediss$/, 'redis');
  if (!scheme) {
    throw new TrellisError(
      'TRELLIS_E_STORE_URL_INVALID',
      `${JSON.stringify(raw)} is not a store URL: write one of ${allowed.map((s) => `${s}:…`).join(', ')} (for example sqlite:./data/trellis.db)`,
    );
  }
  if (!allowed.includes(scheme)) {
    throw new TrellisError(
      'TRELLIS_E_STORE_UNSUPPORTED',
      `${block} has no "${scheme}" backend: use one of ${allowed.join(', ')}`,
    );
  }
  return scheme;
}

const HINTS: Record<string, string> = {
  postgres: 'is PostgreSQL running there? check the host, port, database and credentials in the URL',
  redis: 'is Redis running there? check the host, port and password in the URL',
  nats: 'is nats-server running there with JetStream (-js)? check the host and port in the URL',
  etcd: 'is etcd running there? check the host and port in the URL',
  sqlite: 'check that the folder exists and is writable',
};

/**
 * Turns a driver's connection failure into a TrellisError that says what to fix, never a raw
 * driver stack: `postgres://…: connection refused at 127.0.0.1:5433 — is PostgreSQL running? …`
 */
export function unavailable(backend: string, url: string, err: unknown): TrellisError {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const where = e.address ? ` at ${e.address}${e.port ? `:${e.port}` : ''}` : '';
  let what: string;
  switch (e.code) {
    case 'ECONNREFUSED':
      what = `connection refused${where}`;
      break;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      what = 'host not found';
      break;
    case 'ETIMEDOUT':
      what = `timed out${where}`;
      break;
    case '28P01':
    case '28000':
      what = 'authentication failed: check the user and password in the URL';
      break;
    case '3D000':
      what = 'database does not exist: create it or fix the database name in the URL';
      break;
    default:
      what = (e?.message ?? String(err)).split('\n')[0]!;
  }
  const hint = HINTS[backend];
  return new TrellisError(
    'TRELLIS_E_STORE_UNAVAILABLE',
    `${redactUrl(url)}: ${what}${hint ? ` — ${hint}` : ''}`,
    {
      cause: err,
      status: 503,
    },
  );
}
