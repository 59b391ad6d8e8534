import type { AppendResult, EventStore, ExpectedVersion, RecordedEvent } from '../types.js';

/**
 * The transaction an append runs in, handed to inline projections so a read-model change
 * commits (or rolls back) together with the events. `sql` runs one statement with `?`-free,
 * backend-native placeholders ($1 on PostgreSQL, ? on SQLite) and returns its rows.
 */
export interface AppendTransaction {
  readonly backend: 'memory' | 'sqlite' | 'postgres';
  sql<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
}

/** Runs inside the append transaction with the events just recorded. Throwing aborts the append. */
export type InlineHandler = (events: RecordedEvent[], tx: AppendTransaction) => Promise<void>;

export interface AppendOptions {
  expectedVersion?: ExpectedVersion;
  /** Inline projections (backends with the 'inlineProjections' feature). */
  inline?: InlineHandler[];
}

/**
 * EventStore as the backends here implement it: the shared contract plus `inline` handlers on
 * append (an additive refinement of src/stores/types.ts) and `transaction` for read models that
 * live in the same database (projection checkpoints advance in the same transaction).
 */
export interface TrellisEventStore extends EventStore {
  append(
    streamId: string,
    events: import('../types.js').NewEvent[],
    options?: AppendOptions,
  ): Promise<AppendResult>;
  /** Runs `fn` in one transaction on the store's own database (not on memory). */
  transaction<T>(fn: (tx: AppendTransaction) => Promise<T>): Promise<T>;
  /** The highest position committed so far (0 when empty). */
  headPosition(): Promise<number>;
}

export interface EventStoreOptions {
  /** SQLite: open the file read-only and refuse a missing file (TRELLIS_E_STORE_NOT_FOUND). */
  readOnly?: boolean;
  /** Table holding the events (default `trellis_events`); lets tests and tenants keep apart. */
  table?: string;
  /** How often subscribers poll when no wake-up arrives (default 250 ms sqlite, 1 s postgres). */
  pollIntervalMs?: number;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
}
