import type Database from 'better-sqlite3';
import { TrellisError } from '../../core/errors.js';
import { Notifier } from '../notifier.js';
import { createTables, openSqlite, sqliteError } from '../sqlite.js';
import type { AppendResult, NewEvent, RecordedEvent, StoreHealth, SubscriptionItem } from '../types.js';
import {
  checkExpectedVersion,
  checkIdentifier,
  checkReadOptions,
  DATABASE_FEATURES,
  type PreparedEvent,
  pollSubscription,
  prepareEvents,
} from './common.js';
import { sqliteTransaction } from './sqlite-transaction.js';
import type { AppendOptions, AppendTransaction, EventStore, EventStoreOptions } from './types.js';

interface Row {
  position: number;
  id: string;
  stream_id: string;
  version: number;
  type: string;
  data: string;
  metadata: string;
  recorded_at: number;
}

function toEvent(r: Row): RecordedEvent {
  return {
    id: r.id,
    streamId: r.stream_id,
    type: r.type,
    data: JSON.parse(r.data),
    metadata: JSON.parse(r.metadata),
    version: r.version,
    position: r.position,
    recordedAt: new Date(r.recorded_at),
  };
}

/**
 * EventStore in an SQLite file (better-sqlite3, WAL). Appends take SQLite's single write lock
 * (BEGIN IMMEDIATE) for their whole transaction, across processes too, so positions are handed
 * out in commit order and a reader of `position > N` can never skip a slower writer.
 */
export class SqliteEventStore implements EventStore {
  readonly backend = 'sqlite';
  readonly features = DATABASE_FEATURES;
  private readonly notifier = new Notifier();
  private readonly t: string;
  get eventsTable(): string {
    return this.t;
  }
  private readonly pollMs: number;
  // One connection, one transaction at a time: async inline handlers must not interleave.
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Opened for reading only: transactions are deferred (BEGIN IMMEDIATE would need to write). */
  private readonly readOnly: boolean;
  private readonly stmts: {
    version: Database.Statement<[string], { v: number | null }>;
    insert: Database.Statement<unknown[]>;
    readStream: Database.Statement<[string, number, number], Row>;
    readAll: Database.Statement<[number, number], Row>;
    head: Database.Statement<[], { p: number | null }>;
  };

  constructor(
    readonly db: Database.Database,
    options: EventStoreOptions = {},
  ) {
    this.t = checkIdentifier(options.table ?? 'trellis_events');
    this.pollMs = options.pollIntervalMs ?? 250;
    const t = this.t;
    this.readOnly = options.readOnly === true;
    createTables(
      db,
      t,
      `CREATE TABLE IF NOT EXISTS ${t} (
      position INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL,
      stream_id TEXT NOT NULL,
      version INTEGER NOT NULL,
      type TEXT NOT NULL,
      data TEXT NOT NULL,
      metadata TEXT NOT NULL,
      recorded_at INTEGER NOT NULL,
      UNIQUE (stream_id, version)
    )`,
      this.readOnly,
    );
    this.stmts = {
      version: db.prepare(`SELECT MAX(version) AS v FROM ${t} WHERE stream_id = ?`),
      insert: db.prepare(
        `INSERT INTO ${t} (id, stream_id, version, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      readStream: db.prepare(
        `SELECT * FROM ${t} WHERE stream_id = ? AND version >= ? ORDER BY version LIMIT ?`,
      ),
      readAll: db.prepare(`SELECT * FROM ${t} WHERE position > ? ORDER BY position LIMIT ?`),
      head: db.prepare(`SELECT MAX(position) AS p FROM ${t}`),
    };
  }

  /** Opens (creating when needed) the SQLite file at `path`. */
  static async open(url: string, options: EventStoreOptions = {}): Promise<SqliteEventStore> {
    // Other processes may hold the write lock for a moment: wait rather than fail.
    const db = await openSqlite(url, { busyTimeoutMs: 10_000, readOnly: options.readOnly });
    try {
      return new SqliteEventStore(db, options);
    } catch (err) {
      db.close();
      throw sqliteError(url, err);
    }
  }

  async append(streamId: string, events: NewEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    const prepared = prepareEvents(streamId, events);
    if (!options.inline?.length) {
      // Fast path: no async work inside, so one synchronous transaction needs no queue.
      return this.serial(async () => {
        this.ensureOpen();
        const result = this.db.transaction(() => this.write(streamId, prepared, options).result).immediate();
        this.notifier.notify();
        return result;
      });
    }
    return this.transactionNow(async (tx) => {
      const { result, recorded } = this.write(streamId, prepared, options);
      for (const handler of options.inline ?? []) await handler(recorded, tx);
      return result;
    }).then((r) => {
      this.notifier.notify();
      return r;
    });
  }

  private write(streamId: string, prepared: PreparedEvent[], options: AppendOptions) {
    const current = this.stmts.version.get(streamId)?.v ?? 0;
    checkExpectedVersion(streamId, options.expectedVersion, current);
    const now = Date.now();
    const recorded: RecordedEvent[] = [];
    let position = 0;
    prepared.forEach((e, i) => {
      const info = this.stmts.insert.run(
        e.id,
        streamId,
        current + i + 1,
        e.type,
        e.dataJson,
        e.metadataJson,
        now,
      );
      position = Number(info.lastInsertRowid);
      recorded.push({
        id: e.id,
        streamId,
        type: e.type,
        data: e.data,
        metadata: e.metadata,
        version: current + i + 1,
        position,
        recordedAt: new Date(now),
      });
    });
    if (prepared.length === 0) position = this.stmts.head.get()?.p ?? 0;
    return { result: { nextVersion: current + prepared.length, position }, recorded };
  }

  async readStream(streamId: string, options: { fromVersion?: number; limit?: number } = {}) {
    this.ensureOpen();
    checkReadOptions(options);
    const rows = this.stmts.readStream.all(streamId, options.fromVersion ?? 1, options.limit ?? -1);
    return rows.map(toEvent);
  }

  async readAll(options: { from?: number; limit?: number } = {}) {
    this.ensureOpen();
    checkReadOptions(options);
    return this.stmts.readAll.all(options.from ?? 0, options.limit ?? -1).map(toEvent);
  }

  subscribe(options: { from?: number; signal?: AbortSignal } = {}): AsyncIterable<SubscriptionItem> {
    return pollSubscription(
      {
        readAll: (o) => this.readAll(o),
        // Writers in other processes cannot wake us: poll as the fallback.
        changeGeneration: () => this.notifier.generation,
        waitForChange: (signal, since) => this.notifier.wait(this.pollMs, signal, since),
      },
      options,
    );
  }

  transaction<T>(fn: (tx: AppendTransaction) => Promise<T>): Promise<T> {
    return this.transactionNow(fn);
  }

  private transactionNow<T>(fn: (tx: AppendTransaction) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      this.ensureOpen();
      return sqliteTransaction(this.db, this.readOnly ? 'BEGIN' : 'BEGIN IMMEDIATE', fn, this.t);
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  async headPosition(): Promise<number> {
    this.ensureOpen();
    return this.stmts.head.get()?.p ?? 0;
  }

  async health(): Promise<StoreHealth> {
    if (this.closed) return { ok: false, backend: 'sqlite', detail: 'closed' };
    try {
      this.db.prepare('SELECT 1').get();
      return { ok: true, backend: 'sqlite' };
    } catch (err) {
      return { ok: false, backend: 'sqlite', detail: (err as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.notifier.notify();
    await this.tail;
    this.db.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private ensureOpen(): void {
    if (this.closed) {
      throw new TrellisError('TRELLIS_E_STORE_CLOSED', 'this event store was closed: open a new one');
    }
  }
}
