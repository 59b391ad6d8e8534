import { isTrellisError, TrellisError } from '../core/errors.js';
import type { AppendTransaction, EventStore, InlineHandler } from '../stores/events/types.js';
import { Notifier } from '../stores/notifier.js';
import type { RecordedEvent } from '../stores/types.js';
import { sql } from './sql.js';
import type { Upcaster } from './types.js';
import { upcast } from './upcast.js';
import { waitForPosition } from './wait.js';

/** Gives the physical table of one copy of the read model for a logical table name. */
export type TableNamer = (logical: string) => string;

/**
 * A projection: a read model kept in tables beside the events (SQLite or PostgreSQL; the memory
 * store keeps them in an in-process SQLite database). Queries
 * read the logical table names, which are views onto the current copy; a rebuild fills a
 * fresh copy and swaps the views in one transaction.
 */
export interface Projection {
  /** Unique name, used by the CLI and in the checkpoint table. */
  name: string;
  /** Logical read-model table names (what queries read). */
  tables: string[];
  /** Creates one copy's tables (and indexes: name them after `t(...)` so copies do not clash). */
  setup(tx: AppendTransaction, t: TableNamer): Promise<void>;
  /** Applies events in position order to the copy named by `t`, inside the checkpoint's transaction. */
  apply(events: RecordedEvent[], tx: AppendTransaction, t: TableNamer): Promise<void>;
  /** Only these event types reach `apply` (the checkpoint still advances past the rest). */
  eventTypes?: string[];
  upcasters?: Upcaster[];
  /** Events per transaction when catching up (default 500). */
  batchSize?: number;
}

/** Where a projection stands. */
export interface ProjectionStatus {
  name: string;
  /** Which copy queries read. */
  generation: number;
  /** Position of the last event applied to that copy. */
  position: number;
  /** Head of the event store minus position. */
  lag: number;
  /** Set while a rebuild is filling (or was interrupted filling) the next copy. */
  rebuild?: { generation: number; position: number };
}

/**
 * Where a store's projections live. Beside the default events table the names are as written
 * (`trellis_projections`, `order_list`); beside any other (`?table=shop_events`) they carry that
 * table's name (`shop_events_projections`, `shop_events_order_list`), so two event stores in one
 * database never share a checkpoint or a read model. Queries find a read model's name with
 * `projectionTable(store, 'order_list')`.
 */
const DEFAULT_EVENTS = 'trellis_events';
function scopeOf(eventsTable: string | undefined): string {
  return eventsTable === undefined || eventsTable === DEFAULT_EVENTS ? '' : `${eventsTable}_`;
}
const scope = (tx: AppendTransaction) => scopeOf(tx.eventsTable);
const registryOf = (tx: AppendTransaction) => (scope(tx) ? `${scope(tx)}projections` : 'trellis_projections');

/** The name queries read a projection's table by (its view over the current copy). */
export function projectionTable(store: EventStore, logical: string): string {
  return `${scopeOf(store.eventsTable)}${logical}`;
}

interface Row {
  name: string;
  generation: number;
  position: number;
  rebuild_generation: number | null;
  rebuild_position: number | null;
}

function checkName(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,40}$/i.test(name)) {
    throw new TrellisError(
      'TRELLIS_E_PROJECTION_INVALID',
      `"${name}" is not a valid projection or table name: use letters, digits and underscores (at most 41)`,
    );
  }
}

/** The physical table namer for copy `generation` (`scope`: the events table's, see scopeOf). */
export function tablesOf(generation: number, scope = ''): TableNamer {
  return (logical) => {
    const name = `${scope}${logical}__g${generation}`;
    if (name.length > 63) {
      throw new TrellisError(
        'TRELLIS_E_PROJECTION_INVALID',
        `table "${name}" is longer than 63 characters: shorten the events table's or the projection's name`,
      );
    }
    return name;
  };
}

async function readRow(tx: AppendTransaction, name: string): Promise<Row | undefined> {
  const [r] = await sql<Row>(tx, `SELECT * FROM ${registryOf(tx)} WHERE name = $1`, [name]);
  if (!r) return undefined;
  return {
    ...r,
    generation: Number(r.generation),
    position: Number(r.position),
    rebuild_generation: r.rebuild_generation === null ? null : Number(r.rebuild_generation),
    rebuild_position: r.rebuild_position === null ? null : Number(r.rebuild_position),
  };
}

async function pointViews(tx: AppendTransaction, p: Projection, generation: number): Promise<void> {
  const t = tablesOf(generation, scope(tx));
  for (const logical of p.tables) {
    await sql(tx, `DROP VIEW IF EXISTS ${scope(tx)}${logical}`);
    await sql(tx, `CREATE VIEW ${scope(tx)}${logical} AS SELECT * FROM ${t(logical)}`);
  }
}

/** Whether the checkpoint table exists yet (no projection has ever run when it does not). */
async function registryExists(tx: AppendTransaction): Promise<boolean> {
  const rows =
    tx.backend === 'postgres'
      ? await sql<{ t: string | null }>(tx, 'SELECT to_regclass($1)::text AS t', [registryOf(tx)])
      : await sql<{ t: string }>(
          tx,
          `SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name = $1`,
          [registryOf(tx)],
        );
  return rows.length > 0 && rows[0]!.t !== null;
}

/** Creates the checkpoint table, and the projection's first copy and views, when missing. */
export async function ensureProjection(store: EventStore, p: Projection): Promise<void> {
  checkName(p.name);
  for (const t of p.tables) checkName(t);
  await store.transaction(async (tx) => {
    if (tx.backend === 'postgres') {
      // Two processes starting projections at once must not both create the same tables
      // (CREATE TABLE IF NOT EXISTS is not safe against a concurrent twin on PostgreSQL).
      await tx.sql('SELECT pg_advisory_xact_lock(hashtext($1))', [registryOf(tx)]);
    }
    await sql(
      tx,
      `CREATE TABLE IF NOT EXISTS ${registryOf(tx)} (name TEXT PRIMARY KEY, generation INTEGER NOT NULL, position BIGINT NOT NULL,
        rebuild_generation INTEGER, rebuild_position BIGINT, updated_at BIGINT NOT NULL)`,
    );
    if (await readRow(tx, p.name)) return;
    await p.setup(tx, tablesOf(1, scope(tx)));
    await pointViews(tx, p, 1);
    await sql(
      tx,
      `INSERT INTO ${registryOf(tx)} (name, generation, position, updated_at) VALUES ($1, 1, 0, $2)`,
      [p.name, Date.now()],
    );
  });
}

/** SQLite work is synchronous: without this a long catch-up would starve timers and sockets. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function relevant(p: Projection, events: RecordedEvent[]): RecordedEvent[] {
  const types = p.eventTypes;
  const chosen = types ? events.filter((e) => types.includes(e.type)) : events;
  return chosen.map((e) => upcast(e, p.upcasters));
}

/**
 * An inline projection: pass the result to `handleCommand(..., { inline: [...] })` or
 * `store.append(..., { inline })` and the read model changes in the append's transaction.
 * Call `ensureProjection` once first. Do not also run it asynchronously.
 */
export function inlineProjection(p: Projection): InlineHandler {
  return async (events, tx) => {
    const last = events.at(-1)?.position;
    if (last === undefined) return;
    // Taking the checkpoint row first orders us behind a rebuild's swap, so we write its copy.
    const [row] = await sql<{ generation: number }>(
      tx,
      `UPDATE ${registryOf(tx)} SET position = $1, updated_at = $2 WHERE name = $3 RETURNING generation`,
      [last, Date.now(), p.name],
    );
    if (!row) {
      throw new TrellisError(
        'TRELLIS_E_PROJECTION_UNKNOWN',
        `projection "${p.name}" has no checkpoint yet: call ensureProjection(store, projection) at start-up`,
      );
    }
    const chosen = relevant(p, events);
    if (chosen.length) await p.apply(chosen, tx, tablesOf(Number(row.generation), scope(tx)));
  };
}

/**
 * Applies one batch and advances the checkpoint in the same transaction, guarded by the
 * position and copy it started from: if another runner or a rebuild's swap moved it, nothing
 * is applied (no event applied twice) and the caller re-reads the checkpoint.
 */
async function applyBatch(
  store: EventStore,
  p: Projection,
  from: { generation: number; position: number },
  events: RecordedEvent[],
  column: 'position' | 'rebuild_position',
): Promise<boolean> {
  const last = events.at(-1)!.position;
  const genColumn = column === 'position' ? 'generation' : 'rebuild_generation';
  return store.transaction(async (tx) => {
    const moved = await sql(
      tx,
      `UPDATE ${registryOf(tx)} SET ${column} = $1, updated_at = $2 WHERE name = $3 AND ${genColumn} = $4 AND ${column} = $5 RETURNING name`,
      [last, Date.now(), p.name, from.generation, from.position],
    );
    if (moved.length === 0) return false;
    const chosen = relevant(p, events);
    if (chosen.length) await p.apply(chosen, tx, tablesOf(from.generation, scope(tx)));
    return true;
  });
}

/** The status of each projection (position, lag, an unfinished rebuild). */
export async function projectionStatus(
  store: EventStore,
  projections: Projection[],
): Promise<ProjectionStatus[]> {
  const head = await store.headPosition();
  const out: ProjectionStatus[] = [];
  for (const p of projections) {
    checkName(p.name);
    // Status only reads (it may run on a read-only store): a projection that never ran is
    // reported as copy 0 at position 0, not created.
    const row = await store.transaction(async (tx) =>
      (await registryExists(tx)) ? readRow(tx, p.name) : undefined,
    );
    if (!row) {
      out.push({ name: p.name, generation: 0, position: 0, lag: head });
      continue;
    }
    out.push({
      name: p.name,
      generation: row.generation,
      position: row.position,
      lag: Math.max(0, head - row.position),
      ...(row.rebuild_generation === null
        ? {}
        : { rebuild: { generation: row.rebuild_generation, position: row.rebuild_position ?? 0 } }),
    });
  }
  return out;
}

/** The position a projection's current copy has reached. */
export async function projectionPosition(store: EventStore, name: string): Promise<number> {
  // A projection that never ran (its store has no checkpoint table yet) is at 0.
  const row = await store.transaction(async (tx) =>
    (await registryExists(tx)) ? readRow(tx, name) : undefined,
  );
  return row?.position ?? 0;
}

/** Read-your-writes: waits until projection `name` has applied `position` (from an append). */
export function waitForProjection(
  store: EventStore,
  name: string,
  position: number,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<number> {
  return waitForPosition(() => projectionPosition(store, name), position, { ...options, name });
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Called after each committed batch. */
  onBatch?: (info: { name: string; position: number; events: number }) => void;
  /** How often to look for new events when no wake-up arrives (default 500 ms). */
  pollIntervalMs?: number;
  /** Told about each TRELLIS_E_STORE_UNAVAILABLE the runner rides out (it retries with backoff). */
  onError?: (err: unknown) => void;
}

/**
 * Runs an asynchronous projection until the signal aborts: catches up in batches, then follows
 * new events. Each batch and its checkpoint commit together, so a crash at any point (even
 * SIGKILL mid-batch) resumes from the last committed batch without applying an event twice.
 */
export async function runProjection(store: EventStore, p: Projection, options: RunOptions = {}) {
  await ensureProjection(store, p);
  const { signal } = options;
  const batchSize = p.batchSize ?? 500;
  const wake = new Notifier();
  // The store's subscription is only a wake-up here; the checkpoint row is the cursor.
  const head = await store.headPosition();
  const watcher = (async () => {
    try {
      for await (const _ of store.subscribe({ from: head, ...(signal ? { signal } : {}) })) wake.notify();
    } catch {
      // The store closed or failed: the polling fallback keeps the projection going.
    }
  })();
  let row = (await store.transaction((tx) => readRow(tx, p.name)))!;
  let backoff = 100;
  try {
    while (!signal?.aborted) {
      try {
        const events = await store.readAll({ from: row.position, limit: batchSize });
        if (events.length === 0) {
          await wake.wait(options.pollIntervalMs ?? 500, signal);
          continue;
        }
        if (await applyBatch(store, p, row, events, 'position')) {
          row = { ...row, position: events.at(-1)!.position };
          options.onBatch?.({ name: p.name, position: row.position, events: events.length });
          await yieldToEventLoop();
        } else {
          row = (await store.transaction((tx) => readRow(tx, p.name)))!;
        }
        backoff = 100;
      } catch (err) {
        // A database that went away comes back: wait and resume from the committed checkpoint.
        // Anything else (a bug in apply) stops the projection rather than skip events.
        if (!isTrellisError(err, 'TRELLIS_E_STORE_UNAVAILABLE')) throw err;
        options.onError?.(err);
        await wake.wait(backoff, signal);
        backoff = Math.min(backoff * 2, 5000);
        const fresh = await store.transaction((tx) => readRow(tx, p.name)).catch(() => undefined);
        if (fresh) row = fresh;
      }
    }
  } finally {
    wake.notify();
    if (signal?.aborted) await watcher;
  }
}

export interface RebuildProgress {
  name: string;
  done: number;
  total: number;
  /** Events per second so far. */
  rate: number;
  /** Estimated seconds left. */
  secondsLeft: number;
}

/**
 * Replays every event into a fresh copy of the read model while queries keep reading the old
 * one, then swaps the views in one transaction and drops the old copy. The fresh copy's
 * progress is checkpointed, so a rebuild that crashed resumes where it stopped.
 */
export async function rebuildProjection(
  store: EventStore,
  p: Projection,
  options: { signal?: AbortSignal; onProgress?: (progress: RebuildProgress) => void } = {},
): Promise<ProjectionStatus> {
  await ensureProjection(store, p);
  const batchSize = p.batchSize ?? 500;
  let target = await store.transaction(async (tx) => {
    const row = (await readRow(tx, p.name))!;
    if (row.rebuild_generation !== null)
      return { generation: row.rebuild_generation, position: row.rebuild_position ?? 0 };
    const generation = row.generation + 1;
    const t = tablesOf(generation, scope(tx));
    // Leftovers of a copy with this number (a rebuild abandoned long ago) would mix in.
    for (const logical of p.tables) await sql(tx, `DROP TABLE IF EXISTS ${t(logical)}`);
    await p.setup(tx, t);
    await sql(
      tx,
      `UPDATE ${registryOf(tx)} SET rebuild_generation = $1, rebuild_position = 0 WHERE name = $2`,
      [generation, p.name],
    );
    return { generation, position: 0 };
  });
  const startedAt = performance.now();
  const head = await store.headPosition();
  let done = 0;
  const report = () => {
    const total = done + Math.max(0, head - target.position);
    const rate = done / Math.max(0.001, (performance.now() - startedAt) / 1000);
    options.onProgress?.({
      name: p.name,
      done,
      total,
      rate,
      secondsLeft: rate > 0 ? (total - done) / rate : 0,
    });
  };
  report();
  for (;;) {
    if (options.signal?.aborted) {
      throw new TrellisError(
        'TRELLIS_E_PROJECTION_REBUILD_ABORTED',
        `rebuild of "${p.name}" stopped at position ${target.position}: run it again to resume`,
      );
    }
    const events = await store.readAll({ from: target.position, limit: batchSize });
    if (events.length === 0) break;
    if (!(await applyBatch(store, p, target, events, 'rebuild_position'))) {
      throw new TrellisError(
        'TRELLIS_E_PROJECTION_REBUILD_CONFLICT',
        `another rebuild of "${p.name}" is running: let it finish (trellis projections status shows it)`,
      );
    }
    target = { ...target, position: events.at(-1)!.position };
    done += events.length;
    report();
    await yieldToEventLoop();
  }
  const old = await store.transaction(async (tx) => {
    // Lock the checkpoint row first: runners and inline writers queue behind the swap.
    await sql(tx, `UPDATE ${registryOf(tx)} SET updated_at = $1 WHERE name = $2`, [Date.now(), p.name]);
    const row = (await readRow(tx, p.name))!;
    if (row.rebuild_generation !== target.generation || row.rebuild_position !== target.position) {
      throw new TrellisError(
        'TRELLIS_E_PROJECTION_REBUILD_CONFLICT',
        `another rebuild of "${p.name}" moved its checkpoint: run the rebuild again`,
      );
    }
    // Events that landed since the last batch go into the fresh copy before it goes live.
    let position = target.position;
    for (;;) {
      const events = await store.readAll({ from: position, limit: batchSize });
      if (events.length === 0) break;
      const chosen = relevant(p, events);
      if (chosen.length) await p.apply(chosen, tx, tablesOf(target.generation, scope(tx)));
      position = events.at(-1)!.position;
      done += events.length;
    }
    await pointViews(tx, p, target.generation);
    await sql(
      tx,
      `UPDATE ${registryOf(tx)} SET generation = $1, position = $2, rebuild_generation = NULL, rebuild_position = NULL, updated_at = $3 WHERE name = $4`,
      [target.generation, position, Date.now(), p.name],
    );
    return row.generation;
  });
  report();
  await store.transaction(async (tx) => {
    for (const logical of p.tables)
      await sql(tx, `DROP TABLE IF EXISTS ${tablesOf(old, scope(tx))(logical)}`);
  });
  return (await projectionStatus(store, [p]))[0]!;
}
