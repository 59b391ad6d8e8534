import type { EventStore } from '../stores/events/types.js';
import { sql } from './sql.js';

/** A stream's state at a version, tagged with the decider version that produced it. */
export interface Snapshot<S = unknown> {
  state: S;
  /** Stream version the state includes. */
  version: number;
  deciderVersion: number;
}

/** Where snapshots live. A lost or stale snapshot only costs a longer read. */
export interface SnapshotStore {
  load(streamId: string): Promise<Snapshot | undefined>;
  save(streamId: string, snapshot: Snapshot): Promise<void>;
}

/** Snapshots in process memory (tests, single process). */
export function memorySnapshots(): SnapshotStore {
  const map = new Map<string, string>();
  return {
    async load(id) {
      const raw = map.get(id);
      return raw === undefined ? undefined : (JSON.parse(raw) as Snapshot);
    },
    async save(id, s) {
      map.set(id, JSON.stringify(s));
    },
  };
}

/**
 * Snapshots in a table beside the events (SQLite or PostgreSQL store): by default
 * `trellis_snapshots`, or `<events table>_snapshots` beside a store opened with its own `table`.
 */
export function sqlSnapshots(
  store: EventStore,
  table = store.eventsTable && store.eventsTable !== 'trellis_events'
    ? `${store.eventsTable}_snapshots`
    : 'trellis_snapshots',
): SnapshotStore {
  let ready: Promise<unknown> | undefined;
  const ensure = () =>
    (ready ??= store.transaction(async (tx) => {
      // CREATE TABLE IF NOT EXISTS is not safe against a concurrent twin on PostgreSQL.
      if (tx.backend === 'postgres') await tx.sql('SELECT pg_advisory_xact_lock(hashtext($1))', [table]);
      await sql(
        tx,
        `CREATE TABLE IF NOT EXISTS ${table} (stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL, decider_version INTEGER NOT NULL, state TEXT NOT NULL)`,
      );
    }));
  return {
    async load(id) {
      await ensure();
      const rows = await store.transaction((tx) =>
        sql<{ version: number; decider_version: number; state: string }>(
          tx,
          `SELECT version, decider_version, state FROM ${table} WHERE stream_id = $1`,
          [id],
        ),
      );
      const r = rows[0];
      return r
        ? { version: r.version, deciderVersion: r.decider_version, state: JSON.parse(r.state) }
        : undefined;
    },
    async save(id, s) {
      await ensure();
      await store.transaction((tx) =>
        sql(
          tx,
          `INSERT INTO ${table} (stream_id, version, decider_version, state) VALUES ($1, $2, $3, $4)
           ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, decider_version = excluded.decider_version, state = excluded.state
           WHERE ${table}.version < excluded.version`,
          [id, s.version, s.deciderVersion, JSON.stringify(s.state)],
        ),
      );
    },
  };
}
