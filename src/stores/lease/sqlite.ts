import type Database from 'better-sqlite3';
import { closedError, featureList, tableParam } from '../kv/common.js';
import { createTables, openSqlite, parseSqliteUrl, sqliteError } from '../sqlite.js';
import type { Lease, LeaseStore, StoreHealth, StoreOpenOptions } from '../types.js';
import { checkLeaseArgs, leaseLost } from './common.js';

interface Row {
  name: string;
  holder: string | null;
  token: number;
  expires_at: number;
}

/**
 * LeaseStore on an SQLite file (`sqlite:PATH?table=trellis_lease`), shared safely by processes on
 * one machine: each call is one BEGIN IMMEDIATE transaction, and a released or lapsed row is kept
 * (holder NULL) so the next token is always the last one plus one, across restarts. Expiry uses
 * this machine's clock, which every process on it shares.
 */
export class SqliteLeaseStore implements LeaseStore {
  readonly backend = 'sqlite';
  readonly features = featureList(['durable', 'multiProcess']);
  #closed = false;
  readonly #q: ReturnType<typeof statements>;

  private constructor(
    private readonly db: Database.Database,
    private readonly url: string,
    table: string,
  ) {
    this.#q = statements(db, table);
  }

  /** Opens (and creates if needed) the lease table in the file the URL names. */
  static async open(url: string, options: StoreOpenOptions = {}): Promise<SqliteLeaseStore> {
    const table = tableParam(parseSqliteUrl(url).params, 'trellis_lease');
    const db = await openSqlite(url, { readOnly: options.readOnly });
    try {
      createTables(
        db,
        table,
        `CREATE TABLE IF NOT EXISTS ${table} (
        name TEXT PRIMARY KEY, holder TEXT, token INTEGER NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID`,
        options.readOnly === true,
      );
      return new SqliteLeaseStore(db, url, table);
    } catch (err) {
      db.close();
      throw sqliteError(url, err);
    }
  }

  async acquire(name: string, holder: string, ttlMs: number): Promise<Lease | undefined> {
    this.#open();
    checkLeaseArgs(name, holder, ttlMs);
    return this.#tx(() => {
      const now = Date.now();
      const row = this.#q.get.get(name) as Row | undefined;
      if (row?.holder != null && row.expires_at > now) {
        if (row.holder !== holder) return undefined;
        this.#q.extend.run(now + ttlMs, name);
        return { name, holder, token: row.token, expiresAt: now + ttlMs };
      }
      const token = (row?.token ?? 0) + 1;
      this.#q.take.run(name, holder, token, now + ttlMs);
      return { name, holder, token, expiresAt: now + ttlMs };
    });
  }

  async renew(lease: Pick<Lease, 'name' | 'holder' | 'token'>, ttlMs: number): Promise<Lease> {
    this.#open();
    checkLeaseArgs(lease.name, lease.holder, ttlMs);
    return this.#tx(() => {
      const now = Date.now();
      const row = this.#q.get.get(lease.name) as Row | undefined;
      if (!row || row.holder !== lease.holder || row.token !== lease.token) {
        throw leaseLost(lease, 'another holder or a later token has it, or it was released');
      }
      if (row.expires_at <= now) throw leaseLost(lease, 'it lapsed before the renewal');
      this.#q.extend.run(now + ttlMs, lease.name);
      return { name: lease.name, holder: lease.holder, token: row.token, expiresAt: now + ttlMs };
    });
  }

  async release(lease: Pick<Lease, 'name' | 'holder' | 'token'>): Promise<boolean> {
    this.#open();
    return this.#tx(
      () => this.#q.release.run(lease.name, lease.holder, lease.token, Date.now()).changes === 1,
    );
  }

  async read(name: string): Promise<Lease | undefined> {
    this.#open();
    const row = this.#run(() => this.#q.get.get(name) as Row | undefined);
    if (row?.holder == null || row.expires_at <= Date.now()) return undefined;
    return { name, holder: row.holder, token: row.token, expiresAt: row.expires_at };
  }

  async health(): Promise<StoreHealth> {
    if (this.#closed) return { ok: false, backend: 'sqlite', detail: 'closed' };
    try {
      this.db.prepare('SELECT 1').get();
      return { ok: true, backend: 'sqlite' };
    } catch (err) {
      return { ok: false, backend: 'sqlite', detail: (err as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.db.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #tx<T>(fn: () => T): T {
    return this.#run(() => this.db.transaction(fn).immediate());
  }

  #run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw sqliteError(this.url, err);
    }
  }

  #open(): void {
    if (this.#closed) throw closedError('sqlite');
  }
}

function statements(db: Database.Database, t: string) {
  return {
    get: db.prepare(`SELECT name, holder, token, expires_at FROM ${t} WHERE name = ?`),
    extend: db.prepare(`UPDATE ${t} SET expires_at = ? WHERE name = ?`),
    take: db.prepare(
      `INSERT INTO ${t} (name, holder, token, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = excluded.token, expires_at = excluded.expires_at`,
    ),
    release: db.prepare(
      `UPDATE ${t} SET holder = NULL, expires_at = 0 WHERE name = ? AND holder = ? AND token = ? AND expires_at > ?`,
    ),
  };
}
