export type {
  AppendOptions,
  AppendTransaction,
  EventStore,
  InlineHandler,
} from '../types.js';

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
