import type pg from 'pg';
import { TrellisError } from '../core/errors.js';
import { unavailable } from './connection.js';

/** Query-string options Trellis reads from a postgres:// URL (not passed on to the driver). */
const OWN_PARAMS = ['table', 'retain', 'pollMs', 'maxValueBytes', 'poolSize'];

/** A postgres:// URL split into the driver's connection string and Trellis's own options. */
export function parsePostgresUrl(url: string): { connectionString: string; params: URLSearchParams } {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw new TrellisError(
      'TRELLIS_E_STORE_URL_INVALID',
      `${JSON.stringify(url.replace(/:\/\/([^:/@]+):[^@]*@/, '://$1:***@'))} is not a valid URL: write postgres://user:password@host:5432/database`,
      { cause: err },
    );
  }
  const params = new URLSearchParams(u.searchParams);
  for (const p of OWN_PARAMS) u.searchParams.delete(p);
  return { connectionString: u.toString(), params };
}

/** SQLSTATEs and socket errors that mean the server or the connection went away, not a bad statement. */
const CONNECTION_CODES = new Set(['57P01', '57P02', '57P03', '53300', '28P01', '28000', '3D000']);

/** True for errors about reaching the server (refused, reset, terminated, timed out, auth). */
export function isPgConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (e?.code && (CONNECTION_CODES.has(e.code) || e.code.startsWith('08') || /^E[A-Z]+$/.test(e.code))) {
    return true;
  }
  return /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Connection closed/i.test(
    e?.message ?? '',
  );
}

/** Maps a connection failure to TRELLIS_E_STORE_UNAVAILABLE; any other error is returned as is. */
export function pgError(url: string, err: unknown): unknown {
  if (err instanceof TrellisError) return err;
  return isPgConnectionError(err) ? unavailable('postgres', url, err) : err;
}

/**
 * Opens a pg Pool for a store and checks it can connect, so a wrong URL fails at open with a clear
 * message. The driver is loaded here, lazily. Idle connections the server kills (restart,
 * pg_terminate_backend) are dropped by the pool and replaced on the next query.
 */
export async function openPgPool(url: string, options: { max?: number; applicationName?: string } = {}) {
  const { connectionString, params } = parsePostgresUrl(url);
  const { default: pgModule } = await import('pg');
  const pool = new pgModule.Pool({
    connectionString,
    max: options.max ?? Number(params.get('poolSize') ?? 10),
    connectionTimeoutMillis: 5000,
    ...(new URL(connectionString).searchParams.has('application_name')
      ? {}
      : { application_name: options.applicationName ?? 'trellis' }),
  });
  pool.on('error', () => {});
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await pool.end().catch(() => {});
    throw unavailable('postgres', url, err);
  }
  return { pool, pg: pgModule, params, connectionString };
}

/** Runs `fn` in a transaction on one pooled connection (BEGIN … COMMIT, ROLLBACK on failure). */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    // A connection that failed is destroyed, not returned to the pool.
    if (isPgConnectionError(err)) broken = err as Error;
    else await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release(broken);
  }
}

/** A LIKE pattern (with ESCAPE '\') matching every string that starts with `prefix`. */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

const names = new Map<string, string>();

/**
 * A stable name for a statement, so pg prepares it once per connection and later calls skip
 * parsing and planning (one name per distinct SQL text, shared by every store in the process).
 */
export function statementName(sql: string): string {
  let name = names.get(sql);
  if (!name) {
    name = `trellis_s${names.size + 1}`;
    names.set(sql, name);
  }
  return name;
}
