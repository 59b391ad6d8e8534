import type Database from 'better-sqlite3';
import { TrellisError } from '../../core/errors.js';
import { Notifier } from '../notifier.js';
import type { AppendResult, NewEvent, RecordedEvent, StoreHealth, SubscriptionItem } from '../types.js';
import {
  checkExpectedVersion,
  checkReadOptions,
  features,
  pollSubscription,
  prepareEvents,
} from './common.js';
import { sqliteTransaction } from './sqlite-transaction.js';
import type { AppendOptions, AppendTransaction, EventStore } from './types.js';

/**
 * EventStore in process memory: for tests and single-process tools; gone on exit. Read models
 * (projections, snapshots) get an in-process SQLite database (`:memory:`, created on first use),
 * so the same projection code runs here with real transactions; its `tx.backend` is 'sqlite'.
 */
export class MemoryEventStore implements EventStore {
  readonly backend = 'memory';
  readonly features = features<'durable' | 'multiProcess' | 'inlineProjections'>(['inlineProjections'], {
    durable: 'memory is lost when the process exits',
    multiProcess: 'memory is private to one process',
  });
  private readonly all: RecordedEvent[] = [];
  private readonly streams = new Map<string, RecordedEvent[]>();
  private readonly notifier = new Notifier();
  // Appends and transactions run one at a time so an async handler sees a stable state.
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private db: Database.Database | undefined;

  append(streamId: string, events: NewEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    return this.serial(() => this.appendNow(streamId, events, options));
  }

  private async appendNow(
    streamId: string,
    events: NewEvent[],
    options: AppendOptions,
  ): Promise<AppendResult> {
    this.ensureOpen();
    const prepared = prepareEvents(streamId, events);
    const stream = this.streams.get(streamId) ?? [];
    checkExpectedVersion(streamId, options.expectedVersion, stream.length);
    const base = this.all.length;
    const recordedAt = new Date();
    const recorded: RecordedEvent[] = prepared.map((e, i) => ({
      id: e.id,
      streamId,
      type: e.type,
      data: e.data,
      metadata: e.metadata,
      version: stream.length + i + 1,
      position: base + i + 1,
      recordedAt,
    }));
    // Inline handlers run before the events become visible; a throw leaves the store untouched.
    if (options.inline?.length) {
      await this.runTx(async (tx) => {
        for (const handler of options.inline ?? []) await handler(recorded.map(copyEvent), tx);
      });
    }
    this.all.push(...recorded);
    stream.push(...recorded);
    this.streams.set(streamId, stream);
    this.notifier.notify();
    return { nextVersion: stream.length, position: recorded.at(-1)?.position ?? base };
  }

  async readStream(streamId: string, options: { fromVersion?: number; limit?: number } = {}) {
    this.ensureOpen();
    checkReadOptions(options);
    const from = Math.max(1, options.fromVersion ?? 1);
    const stream = this.streams.get(streamId) ?? [];
    return stream
      .slice(from - 1, options.limit === undefined ? undefined : from - 1 + options.limit)
      .map(copyEvent);
  }

  async readAll(options: { from?: number; limit?: number } = {}) {
    this.ensureOpen();
    checkReadOptions(options);
    const from = Math.max(0, options.from ?? 0);
    return this.all
      .slice(from, options.limit === undefined ? undefined : from + options.limit)
      .map(copyEvent);
  }

  subscribe(options: { from?: number; signal?: AbortSignal } = {}): AsyncIterable<SubscriptionItem> {
    return pollSubscription(
      {
        readAll: (o) => this.readAll(o),
        changeGeneration: () => this.notifier.generation,
        waitForChange: (signal, since) => this.notifier.wait(60_000, signal, since),
      },
      options,
    );
  }

  transaction<T>(fn: (tx: AppendTransaction) => Promise<T>): Promise<T> {
    return this.serial(() => {
      this.ensureOpen();
      return this.runTx(fn);
    });
  }

  private async runTx<T>(fn: (tx: AppendTransaction) => Promise<T>): Promise<T> {
    return sqliteTransaction(await this.database(), 'BEGIN', fn);
  }

  private async database(): Promise<Database.Database> {
    if (!this.db) {
      const { default: Sqlite } = await import('better-sqlite3');
      this.db ??= new Sqlite(':memory:');
    }
    return this.db;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  async headPosition(): Promise<number> {
    return this.all.length;
  }

  async health(): Promise<StoreHealth> {
    return this.closed ? { ok: false, backend: 'memory', detail: 'closed' } : { ok: true, backend: 'memory' };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.notifier.notify();
    await this.tail;
    this.db?.close();
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

/** Readers get their own copy, as from a database: changing it never changes the store. */
function copyEvent(e: RecordedEvent): RecordedEvent {
  return {
    ...e,
    data: structuredClone(e.data),
    metadata: structuredClone(e.metadata),
    recordedAt: new Date(e.recordedAt),
  };
}
