import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type Database from 'better-sqlite3';
import { TrellisError } from '../core/errors.js';
import { unavailable } from './connection.js';

/** A parsed `sqlite:PATH[?option=value]` URL. */
export interface SqliteUrl {
  /** Absolute file path (or `:memory:`). */
  path: string;
  params: URLSearchParams;
}

/**
 * Parses `sqlite:./data/trellis.db`, `sqlite:/abs/file.db`, `sqlite:///abs/file.db` and
 * `sqlite::memory:`, with options in a query string (`?retain=1000`).
 */
export function parseSqliteUrl(url: string): SqliteUrl {
  const rest = url.replace(/^sqlite:/i, '');
  const q = rest.indexOf('?');
  let path = q < 0 ? rest : rest.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : rest.slice(q + 1));
  if (path.startsWith('//')) path = path.slice(2);
  if (!path) {
    throw new TrellisError(
      'TRELLIS_E_STORE_URL_INVALID',
      `${JSON.stringify(url)} names no file: write sqlite:PATH, for example sqlite:./data/trellis.db`,
    );
  }
  return { path: path === ':memory:' ? path : resolve(decodeURIComponent(path)), params };
}

/**
 * Opens an SQLite database the way every Trellis store needs it: WAL (readers never block the
 * writer), a busy timeout so several processes on one machine wait for each other's write lock
 * instead of failing, and NORMAL sync (durable at every checkpoint, safe with WAL). The driver is
 * loaded here, lazily, so users of other backends never load it.
 */
export async function openSqlite(
  url: string,
  options: { busyTimeoutMs?: number; readOnly?: boolean } = {},
): Promise<Database.Database> {
  const { path } = parseSqliteUrl(url);
  const { default: Sqlite } = await import('better-sqlite3');
  if (options.readOnly && path !== ':memory:') {
    // A read-only command on a mistyped path must say so, not create folders and an empty
    // database and then answer "nothing here" as if all were well.
    if (!existsSync(path)) throw missingDatabase(url, path);
    try {
      const db = new Sqlite(path, { readonly: true, fileMustExist: true });
      db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
      return db;
    } catch (err) {
      throw unavailable('sqlite', url, err);
    }
  }
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const db = new Sqlite(path);
    db.pragma('journal_mode = WAL');
    db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
    db.pragma('synchronous = NORMAL');
    return db;
  } catch (err) {
    throw unavailable('sqlite', url, err);
  }
}

/** TRELLIS_E_STORE_NOT_FOUND: a read-only open of an SQLite file that does not exist. */
export function missingDatabase(url: string, path: string): TrellisError {
  return new TrellisError(
    'TRELLIS_E_STORE_NOT_FOUND',
    `${path} does not exist (from ${url}): check the path; read-only commands never create a database`,
    { details: { path } },
  );
}

/**
 * Creates a store's tables from `ddl` (written with `CREATE TABLE IF NOT EXISTS`). On a
 * read-only connection nothing may be written: when the file has the store's tables they are
 * used as they are; when it lacks them (a database written by another building block), empty
 * TEMP tables of the same shape stand in, so reads answer "nothing here" with the same
 * statements and any write fails as read-only.
 */
export function createTables(db: Database.Database, mainTable: string, ddl: string, readOnly: boolean): void {
  if (!readOnly) {
    db.exec(ddl);
    return;
  }
  const has = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(mainTable);
  if (!has) db.exec(ddl.replaceAll('CREATE TABLE IF NOT EXISTS', 'CREATE TEMP TABLE IF NOT EXISTS'));
}

/** Maps an SQLite failure that is about the file, not the caller, to TRELLIS_E_STORE_UNAVAILABLE. */
export function sqliteError(url: string, err: unknown): unknown {
  const code = (err as { code?: string }).code ?? '';
  if (/^SQLITE_(BUSY|LOCKED|CANTOPEN|IOERR|FULL|READONLY|CORRUPT|NOTADB)/.test(code)) {
    return unavailable('sqlite', url, err);
  }
  return err;
}

/** A GLOB pattern matching every key that starts with `prefix` (GLOB is case-sensitive and indexable). */
export function globPrefix(prefix: string): string {
  return `${prefix.replace(/[*?[]/g, (c) => `[${c}]`)}*`;
}
