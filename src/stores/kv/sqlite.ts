import type Database from 'better-sqlite3';
import { Notifier } from '../notifier.js';
import { createTables, globPrefix, openSqlite, parseSqliteUrl, sqliteError } from '../sqlite.js';
import type {
  KeyValueStore,
  KvChange,
  KvEntry,
  KvPutOptions,
  KvWatchOptions,
  StoreHealth,
  StoreOpenOptions,
} from '../types.js';
import {
  checkKey,
  checkRevision,
  checkValue,
  closedError,
  conflict,
  DEFAULT_MAX_VALUE_BYTES,
  DEFAULT_RETAIN_CHANGES,
  featureList,
  intParam,
  tableParam,
  watchGap,
} from './common.js';
import { logWatch } from './log-watch.js';
import { WriteBatcher } from './write-batch.js';

/** A row as the statements select it: already shaped like a KvEntry (no copy per read). */
type Row = KvEntry;

// Stores on the same file in one process wake each other's watchers at once; other processes'
// writes are found by polling the change log.
const notifiers = new Map<string, Notifier>();

/**
 * KeyValueStore on an SQLite file (`sqlite:PATH?table=trellis_kv&retain=100000&pollMs=100`).
 * Writes run in BEGIN IMMEDIATE transactions, so revisions are assigned one writer at a time even
 * across processes; every change goes to a change-log table that watchers read, and the log's
 * row id is the revision (one row written per change instead of a separate counter row too).
 */
export class SqliteKeyValueStore implements KeyValueStore {
  readonly backend = 'sqlite';
  readonly features = featureList(['watch', 'compareAndSet', 'durable', 'multiProcess']);
  #closed = false;
  readonly #notifier: Notifier;
  readonly #q: ReturnType<typeof statements>;
  readonly #writes: WriteBatcher<WriteOp, KvEntry | boolean>;

  private constructor(
    private readonly db: Database.Database,
    private readonly url: string,
    path: string,
    private readonly opts: { maxValueBytes: number; retain: number; pollMs: number },
    table: string,
  ) {
    this.#q = statements(db, table);
    // Built once: better-sqlite3 transaction functions are cheap to call, not to create. Writes
    // queued in the same event-loop turn share one BEGIN IMMEDIATE transaction (one commit).
    const batchTx = db.transaction((ops: WriteOp[]) => ops.map((op) => this.#apply(op)));
    this.#writes = new WriteBatcher((ops) => {
      const outcomes = this.#run(() => batchTx.immediate(ops));
      this.#notifier.notify();
      return outcomes;
    }, 'immediate');
    const shared = notifiers.get(path) ?? new Notifier();
    notifiers.set(path, shared);
    this.#notifier = shared;
  }

  /** Opens (and creates if needed) the store's tables in the file the URL names. */
  static async open(url: string, options: StoreOpenOptions = {}): Promise<SqliteKeyValueStore> {
    const { path, params } = parseSqliteUrl(url);
    const table = tableParam(params, 'trellis_kv');
    const opts = {
      maxValueBytes: intParam(params, 'maxValueBytes', DEFAULT_MAX_VALUE_BYTES),
      retain: intParam(params, 'retain', DEFAULT_RETAIN_CHANGES),
      pollMs: intParam(params, 'pollMs', 100),
    };
    const db = await openSqlite(url, { readOnly: options.readOnly });
    try {
      createTables(
        db,
        table,
        `
        CREATE TABLE IF NOT EXISTS ${table} (
          key TEXT PRIMARY KEY, value TEXT NOT NULL, revision INTEGER NOT NULL,
          create_revision INTEGER NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS ${table}_log (
          revision INTEGER PRIMARY KEY, type TEXT NOT NULL, key TEXT NOT NULL, value TEXT);
        CREATE TABLE IF NOT EXISTS ${table}_meta (
          id INTEGER PRIMARY KEY CHECK (id = 1), compacted INTEGER NOT NULL);
        INSERT OR IGNORE INTO ${table}_meta VALUES (1, 0);`,
        options.readOnly === true,
      );
      return new SqliteKeyValueStore(db, url, path, opts, table);
    } catch (err) {
      db.close();
      throw sqliteError(url, err);
    }
  }

  async get(key: string): Promise<KvEntry | undefined> {
    this.#open();
    checkKey(key);
    try {
      return this.#q.get.get(key) as Row | undefined;
    } catch (err) {
      throw sqliteError(this.url, err);
    }
  }

  async put(key: string, value: string, options: KvPutOptions = {}): Promise<KvEntry> {
    this.#open();
    checkKey(key);
    checkRevision('expectedRevision', options.expectedRevision);
    checkValue(key, value, this.opts.maxValueBytes);
    const op: WriteOp = { type: 'put', key, value, expected: options.expectedRevision };
    return this.#writes.submit(op, value.length) as Promise<KvEntry>;
  }

  async delete(key: string, options: KvPutOptions = {}): Promise<boolean> {
    this.#open();
    checkKey(key);
    checkRevision('expectedRevision', options.expectedRevision);
    const op: WriteOp = { type: 'delete', key, expected: options.expectedRevision };
    return this.#writes.submit(op) as Promise<boolean>;
  }

  async list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    this.#open();
    // One read transaction: the entries and the revision come from the same snapshot.
    return this.#run(() =>
      this.db.transaction(() => {
        const rows = this.#q.list.all(globPrefix(prefix)) as Row[];
        const { revision } = this.#q.head.get() as { revision: number };
        return { entries: rows, revision };
      })(),
    );
  }

  watch(prefix: string, options: KvWatchOptions = {}): AsyncIterable<KvChange> {
    const start =
      options.fromRevision !== undefined
        ? Promise.resolve(options.fromRevision)
        : (async () => {
            this.#open();
            return this.#run(() => (this.#q.head.get() as { revision: number }).revision);
          })();
    const log = {
      read: async (p: string, after: number, limit: number) => {
        this.#open();
        return this.#run(() =>
          this.db.transaction(() => {
            const head = this.#q.head.get() as { revision: number; compacted: number };
            if (after < head.compacted) {
              throw watchGap(after, head.compacted + 1, 'older changes were dropped from the change log');
            }
            const rows = this.#q.changes.all(after, globPrefix(p), limit) as Array<{
              revision: number;
              type: 'put' | 'delete';
              key: string;
              value: string | null;
            }>;
            const changes = rows.map(toChange);
            const scanned = changes.length === limit ? changes.at(-1)!.revision : head.revision;
            return { changes, scanned };
          })(),
        );
      },
      wait: (ms: number, signal: AbortSignal, since?: number) => this.#notifier.wait(ms, signal, since),
      generation: () => this.#notifier.generation,
      closed: () => this.#closed,
    };
    return logWatch(log, prefix, start, { ...options, pollMs: this.opts.pollMs });
  }

  async health(): Promise<StoreHealth> {
    if (this.#closed) return { ok: false, backend: 'sqlite', detail: 'closed' };
    try {
      this.#q.head.get();
      return { ok: true, backend: 'sqlite' };
    } catch (err) {
      return { ok: false, backend: 'sqlite', detail: (err as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Writes accepted before close() are written, not dropped.
    this.#writes.drain();
    this.#notifier.notify();
    this.db.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * One write inside the batch transaction. A failed compare-and-set returns its error before
   * writing anything, so it fails alone and the rest of the batch commits.
   */
  #apply(op: WriteOp): KvEntry | boolean | Error {
    if (op.type === 'put' && op.expected === undefined) {
      // No compare-and-set: one upsert that returns the kept createRevision and the new version.
      const revision = this.#append('put', op.key, op.value);
      const kept = this.#q.upsertReturning.get(op.key, op.value, revision, revision) as {
        createRevision: number;
        version: number;
      };
      this.#compact(revision);
      return { key: op.key, value: op.value, revision, ...kept };
    }
    const old = this.#q.get.get(op.key) as Row | undefined;
    if (op.expected !== undefined && (old?.revision ?? 0) !== op.expected)
      return conflict(op.key, op.expected, old?.revision ?? 0);
    if (op.type === 'delete') {
      if (!old) return false;
      const revision = this.#append('delete', op.key, null);
      this.#q.remove.run(op.key);
      this.#compact(revision);
      return true;
    }
    const revision = this.#append('put', op.key, op.value);
    const next: KvEntry = {
      key: op.key,
      value: op.value,
      revision,
      createRevision: old?.createRevision ?? revision,
      version: (old?.version ?? 0) + 1,
    };
    this.#q.upsert.run(op.key, op.value, revision, next.createRevision, next.version);
    this.#compact(revision);
    return next;
  }

  /** Appends a change; its row id is the new revision (the log's newest row is never trimmed). */
  #append(type: 'put' | 'delete', key: string, value: string | null): number {
    return Number(this.#q.log.run(type, key, value).lastInsertRowid);
  }

  /** Drops change-log rows beyond the retention, in chunks (not on every write) to keep writes cheap. */
  #compact(revision: number): void {
    const every = Math.max(1, Math.min(1000, Math.floor(this.opts.retain / 10)));
    if (revision % every !== 0 || revision <= this.opts.retain) return;
    const through = revision - this.opts.retain;
    this.#q.trim.run(through);
    this.#q.compacted.run(through);
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

/** The columns of an entry, named as KvEntry's fields. */
const ENTRY = 'key, value, revision, create_revision AS createRevision, version';

function statements(db: Database.Database, t: string) {
  return {
    get: db.prepare(`SELECT ${ENTRY} FROM ${t} WHERE key = ?`),
    list: db.prepare(`SELECT ${ENTRY} FROM ${t} WHERE key GLOB ? ORDER BY key`),
    upsert: db.prepare(
      `INSERT INTO ${t} (key, value, revision, create_revision, version) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision, version = excluded.version`,
    ),
    upsertReturning: db.prepare(
      `INSERT INTO ${t} (key, value, revision, create_revision, version) VALUES (?, ?, ?, ?, 1)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision, version = version + 1
       RETURNING create_revision AS createRevision, version`,
    ),
    remove: db.prepare(`DELETE FROM ${t} WHERE key = ?`),
    log: db.prepare(`INSERT INTO ${t}_log (type, key, value) VALUES (?, ?, ?)`),
    head: db.prepare(
      `SELECT coalesce((SELECT max(revision) FROM ${t}_log), 0) AS revision, compacted FROM ${t}_meta WHERE id = 1`,
    ),
    changes: db.prepare(
      `SELECT revision, type, key, value FROM ${t}_log WHERE revision > ? AND key GLOB ? ORDER BY revision LIMIT ?`,
    ),
    trim: db.prepare(`DELETE FROM ${t}_log WHERE revision <= ?`),
    compacted: db.prepare(`UPDATE ${t}_meta SET compacted = max(compacted, ?) WHERE id = 1`),
  };
}

type WriteOp =
  | { type: 'put'; key: string; value: string; expected: number | undefined }
  | { type: 'delete'; key: string; expected: number | undefined };

function toChange(r: {
  revision: number;
  type: 'put' | 'delete';
  key: string;
  value: string | null;
}): KvChange {
  return r.type === 'put'
    ? { type: 'put', key: r.key, value: r.value ?? '', revision: r.revision }
    : { type: 'delete', key: r.key, revision: r.revision };
}
