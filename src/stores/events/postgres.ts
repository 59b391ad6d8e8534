import type pg from 'pg';
import { TrellisError } from '../../core/errors.js';
import { redactUrl, unavailable } from '../connection.js';
import { Notifier } from '../notifier.js';
import type { AppendResult, NewEvent, RecordedEvent, StoreHealth, SubscriptionItem } from '../types.js';
import {
  checkIdentifier,
  checkReadOptions,
  DATABASE_FEATURES,
  expectedCode,
  expectedFromCode,
  type PreparedEvent,
  pollSubscription,
  prepareEvents,
  versionConflict,
} from './common.js';
import type { AppendOptions, AppendTransaction, EventStore, EventStoreOptions } from './types.js';

interface Row {
  position: string;
  id: string;
  stream_id: string;
  version: number;
  type: string;
  data: unknown;
  metadata: Record<string, unknown>;
  recorded_at: Date;
}

function toEvent(r: Row): RecordedEvent {
  return {
    id: r.id,
    streamId: r.stream_id,
    type: r.type,
    data: r.data,
    metadata: r.metadata,
    version: r.version,
    position: Number(r.position),
    recordedAt: r.recorded_at,
  };
}

/** Errors that mean the server or the connection went away (not a bad statement). */
const CONNECTION_CODES = new Set(['57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004']);
function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (e?.code && (CONNECTION_CODES.has(e.code) || /^E[A-Z]+$/.test(e.code))) return true;
  return /Connection terminated|connection error|Client has encountered a connection error|not queryable/i.test(
    e?.message ?? '',
  );
}

/**
 * Why appends are serialised (one global advisory lock per events table, held until commit):
 * the contract promises ONE integer position that grows in commit order, so a reader asking for
 * `position > N` can never skip an event from a slower transaction that commits later (the bug
 * Marten and Emmett shipped). With a plain sequence, a transaction that took position 5 but
 * commits after position 6 is visible would be skipped. The xid8 technique (read only below
 * `pg_snapshot_xmin(pg_current_snapshot())`) avoids that only if readers checkpoint on the pair
 * (transaction id, position), which would break the single-number position every caller and
 * every projection checkpoint relies on. Serialising costs concurrency on one table, but the
 * whole append is one round trip (a PL/pgSQL function), so the lock is held only for the insert
 * and the commit. The lock is released after the commit becomes visible, so positions become
 * visible strictly in order; the test `postgres.int.test.ts` holds a transaction open to prove it.
 * To win back throughput under concurrency, appends waiting in one process are committed together
 * (group commit, `_append_batch`): one transaction and one WAL flush for many appends, each still
 * checked against its own expected version and answered on its own.
 */
function schemaSql(t: string): string {
  return `
CREATE TABLE IF NOT EXISTS ${t} (
  position bigserial PRIMARY KEY,
  id uuid NOT NULL,
  stream_id text NOT NULL,
  version integer NOT NULL,
  type text NOT NULL,
  data jsonb NOT NULL,
  metadata jsonb NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (stream_id, version)
);
CREATE OR REPLACE FUNCTION ${t}_append(
  p_stream text, p_expected integer, p_ids uuid[], p_types text[], p_data jsonb[], p_meta jsonb[]
) RETURNS TABLE (conflict boolean, next_version integer, last_position bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
  v_current integer;
  v_last bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('trellis_events:${t}'));
  SELECT coalesce(max(e.version), 0) INTO v_current FROM ${t} e WHERE e.stream_id = p_stream;
  IF (p_expected = -2 AND v_current = 0) OR (p_expected >= 0 AND v_current <> p_expected) THEN
    RETURN QUERY SELECT true, v_current, 0::bigint;
    RETURN;
  END IF;
  IF coalesce(array_length(p_ids, 1), 0) = 0 THEN
    RETURN QUERY SELECT false, v_current, (SELECT coalesce(max(position), 0) FROM ${t});
    RETURN;
  END IF;
  WITH ins AS (
    INSERT INTO ${t} (id, stream_id, version, type, data, metadata)
    SELECT u.id, p_stream, v_current + u.n::integer, u.type, u.data, u.meta
    FROM unnest(p_ids, p_types, p_data, p_meta) WITH ORDINALITY AS u(id, type, data, meta, n)
    ORDER BY u.n
    RETURNING position
  ) SELECT max(position) INTO v_last FROM ins;
  PERFORM pg_notify('${t}', v_last::text);
  RETURN QUERY SELECT false, v_current + array_length(p_ids, 1), v_last;
END
$fn$;
CREATE OR REPLACE FUNCTION ${t}_append_batch(
  p_streams text[], p_expected integer[], p_counts integer[],
  p_ids uuid[], p_types text[], p_data jsonb[], p_meta jsonb[]
) RETURNS TABLE (idx integer, conflict boolean, next_version integer, last_position bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
  v_current integer;
  v_last bigint;
  v_any bigint := NULL;
  v_off integer := 0;
  v_n integer;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('trellis_events:${t}'));
  FOR i IN 1 .. coalesce(array_length(p_streams, 1), 0) LOOP
    v_n := p_counts[i];
    SELECT coalesce(max(e.version), 0) INTO v_current FROM ${t} e WHERE e.stream_id = p_streams[i];
    IF (p_expected[i] = -2 AND v_current = 0) OR (p_expected[i] >= 0 AND v_current <> p_expected[i]) THEN
      RETURN QUERY SELECT i, true, v_current, 0::bigint;
    ELSIF v_n = 0 THEN
      RETURN QUERY SELECT i, false, v_current, (SELECT coalesce(max(position), 0) FROM ${t});
    ELSE
      WITH ins AS (
        INSERT INTO ${t} (id, stream_id, version, type, data, metadata)
        SELECT p_ids[v_off + k], p_streams[i], v_current + k, p_types[v_off + k], p_data[v_off + k], p_meta[v_off + k]
        FROM generate_series(1, v_n) AS k ORDER BY k
        RETURNING position
      ) SELECT max(position) INTO v_last FROM ins;
      v_any := v_last;
      RETURN QUERY SELECT i, false, v_current + v_n, v_last;
    END IF;
    v_off := v_off + v_n;
  END LOOP;
  IF v_any IS NOT NULL THEN PERFORM pg_notify('${t}', v_any::text); END IF;
END
$fn$;`;
}

interface PendingAppend {
  streamId: string;
  code: number;
  events: PreparedEvent[];
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

/** EventStore on PostgreSQL (pg, loaded lazily). */
export class PostgresEventStore implements EventStore {
  readonly backend = 'postgres';
  readonly features = DATABASE_FEATURES;
  private readonly notifier = new Notifier();
  private readonly t: string;
  get eventsTable(): string {
    return this.t;
  }
  private readonly pollMs: number;
  private listener: pg.Client | undefined;
  private listenerStarting: Promise<void> | undefined;
  private closed = false;
  private readonly pending: PendingAppend[] = [];
  private flushing = false;
  private flushRun: Promise<void> | undefined;

  private constructor(
    private readonly pg: typeof import('pg').default,
    readonly pool: pg.Pool,
    private readonly url: string,
    options: EventStoreOptions,
  ) {
    this.t = checkIdentifier(options.table ?? 'trellis_events');
    this.pollMs = options.pollIntervalMs ?? 1000;
  }

  /** Connects, creates the table and append function when missing. */
  static async open(url: string, options: EventStoreOptions = {}): Promise<PostgresEventStore> {
    const { default: pgModule } = await import('pg');
    const pool = new pgModule.Pool({ connectionString: url, max: options.poolSize ?? 10 });
    // An idle connection killed by the server must not crash the process; the pool replaces it.
    pool.on('error', () => {});
    const store = new PostgresEventStore(pgModule, pool, url, options);
    try {
      await store.init();
    } catch (err) {
      await pool.end().catch(() => {});
      throw store.translate(err);
    }
    return store;
  }

  private async init(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // Several processes may open the same store at once: DDL one at a time.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('trellis_events_ddl:${this.t}'))`);
      await client.query(schemaSql(this.t));
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async append(streamId: string, events: NewEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    this.ensureOpen();
    const prepared = prepareEvents(streamId, events);
    const code = expectedCode(options.expectedVersion);
    const params = [
      streamId,
      code,
      prepared.map((e) => e.id),
      prepared.map((e) => e.type),
      prepared.map((e) => e.dataJson),
      prepared.map((e) => e.metadataJson),
    ];
    const text = `SELECT conflict, next_version, last_position FROM ${this.t}_append($1, $2, $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[])`;
    type R = { conflict: boolean; next_version: number; last_position: string };
    if (!options.inline?.length) {
      return new Promise<AppendResult>((resolve, reject) => {
        this.pending.push({ streamId, code, events: prepared, resolve, reject });
        if (!this.flushing) this.flushRun = this.flush();
      });
    }
    return this.transaction(async (tx) => {
      const [row] = await tx.sql<R>(text, params);
      const result = this.result(streamId, code, row!);
      const recorded = await tx.sql<Row>(
        `SELECT * FROM ${this.t} WHERE stream_id = $1 AND version > $2 ORDER BY version`,
        [streamId, result.nextVersion - prepared.length],
      );
      for (const handler of options.inline ?? []) await handler(recorded.map(toEvent), tx);
      return result;
    });
  }

  /**
   * Commits every waiting append in one transaction, then the ones that arrived meanwhile. Only
   * one batch is in flight per store: they would queue on the append lock anyway.
   */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending.length) {
        const batch = this.pending.splice(0, 200);
        try {
          await this.commitBatch(batch);
        } catch (err) {
          if (batch.length === 1 || isConnectionError(err)) {
            for (const p of batch) p.reject(this.translate(err));
          } else {
            // One bad append (say, data PostgreSQL refuses) must not fail its neighbours.
            for (const p of batch) await this.commitBatch([p]).catch((e) => p.reject(this.translate(e)));
          }
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async commitBatch(batch: PendingAppend[]): Promise<void> {
    const events = batch.flatMap((p) => p.events);
    const { rows } = await this.pool.query<{
      idx: number;
      conflict: boolean;
      next_version: number;
      last_position: string;
    }>({
      // Named: prepared once per connection, so the hot path skips parse and plan.
      name: `${this.t}_append_batch`,
      text: `SELECT idx, conflict, next_version, last_position FROM ${this.t}_append_batch($1::text[], $2::int[], $3::int[], $4::uuid[], $5::text[], $6::jsonb[], $7::jsonb[])`,
      values: [
        batch.map((p) => p.streamId),
        batch.map((p) => p.code),
        batch.map((p) => p.events.length),
        events.map((e) => e.id),
        events.map((e) => e.type),
        events.map((e) => e.dataJson),
        events.map((e) => e.metadataJson),
      ],
    });
    for (const row of rows) {
      const p = batch[row.idx - 1]!;
      try {
        p.resolve(this.result(p.streamId, p.code, row));
      } catch (err) {
        p.reject(err);
      }
    }
  }

  private result(
    streamId: string,
    code: number,
    row: { conflict: boolean; next_version: number; last_position: string },
  ): AppendResult {
    if (row.conflict) throw versionConflict(streamId, expectedFromCode(code), row.next_version);
    return { nextVersion: row.next_version, position: Number(row.last_position) };
  }

  async readStream(streamId: string, options: { fromVersion?: number; limit?: number } = {}) {
    this.ensureOpen();
    checkReadOptions(options);
    const { rows } = await this.run((c) =>
      c.query<Row>({
        name: `${this.t}_read_stream`,
        text: `SELECT * FROM ${this.t} WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3`,
        values: [streamId, options.fromVersion ?? 1, options.limit ?? null],
      }),
    );
    return rows.map(toEvent);
  }

  async readAll(options: { from?: number; limit?: number } = {}) {
    this.ensureOpen();
    checkReadOptions(options);
    const { rows } = await this.run((c) =>
      c.query<Row>({
        name: `${this.t}_read_all`,
        text: `SELECT * FROM ${this.t} WHERE position > $1 ORDER BY position LIMIT $2`,
        values: [options.from ?? 0, options.limit ?? null],
      }),
    );
    return rows.map(toEvent);
  }

  subscribe(options: { from?: number; signal?: AbortSignal } = {}): AsyncIterable<SubscriptionItem> {
    return pollSubscription(
      {
        readAll: (o) => this.readAll(o),
        changeGeneration: () => this.notifier.generation,
        waitForChange: async (signal, since) => {
          // LISTEN/NOTIFY wakes us at once; the timed poll covers a lost listener connection.
          await this.ensureListener().catch(() => {});
          await this.notifier.wait(this.listener ? this.pollMs : Math.min(this.pollMs, 250), signal, since);
        },
      },
      options,
    );
  }

  private ensureListener(): Promise<void> {
    if (this.listener || this.closed) return Promise.resolve();
    this.listenerStarting ??= (async () => {
      const client = new this.pg.Client({ connectionString: this.url });
      const drop = () => {
        if (this.listener === client) this.listener = undefined;
        client.end().catch(() => {});
        this.notifier.notify();
      };
      client.on('error', drop);
      client.on('end', drop);
      client.on('notification', () => this.notifier.notify());
      await client.connect();
      await client.query(`LISTEN ${this.t}`);
      if (this.closed) await client.end();
      else this.listener = client;
    })().finally(() => {
      this.listenerStarting = undefined;
    });
    return this.listenerStarting;
  }

  async transaction<T>(fn: (tx: AppendTransaction) => Promise<T>): Promise<T> {
    this.ensureOpen();
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.translate(err);
    }
    // A checked-out client whose server connection dies between statements emits 'error'; with
    // no listener that would crash the process. The next statement reports it instead.
    let lost: unknown;
    const onLost = (err: unknown) => {
      lost = err;
    };
    client.on('error', onLost);
    const tx: AppendTransaction = {
      backend: 'postgres',
      eventsTable: this.t,
      sql: async <R>(text: string, params: unknown[] = []) => (await client.query(text, params)).rows as R[],
    };
    let broken: unknown;
    try {
      await client.query('BEGIN');
      const result = await fn(tx);
      await client.query('COMMIT');
      this.notifier.notify();
      return result;
    } catch (err) {
      if (isConnectionError(err)) broken = err;
      else await client.query('ROLLBACK').catch((e) => (broken = e));
      throw this.translate(err);
    } finally {
      client.off('error', onLost);
      broken ??= lost;
      // A broken connection is destroyed, not returned to the pool.
      client.release(broken instanceof Error ? broken : undefined);
    }
  }

  private async run<T>(fn: (c: pg.Pool) => Promise<T>): Promise<T> {
    try {
      return await fn(this.pool);
    } catch (err) {
      throw this.translate(err);
    }
  }

  private translate(err: unknown): unknown {
    if (err instanceof TrellisError) return err;
    if (isConnectionError(err)) return unavailable('postgres', this.url, err);
    const e = err as { code?: string };
    if (e?.code === '28P01' || e?.code === '28000' || e?.code === '3D000') {
      return unavailable('postgres', this.url, err);
    }
    return new TrellisError(
      'TRELLIS_E_EVENT_STORE_FAILED',
      `${redactUrl(this.url)}: ${(err as Error)?.message ?? String(err)}`,
      { cause: err },
    );
  }

  async headPosition(): Promise<number> {
    const { rows } = await this.run((c) =>
      c.query<{ p: string | null }>(`SELECT max(position) AS p FROM ${this.t}`),
    );
    return Number(rows[0]?.p ?? 0);
  }

  async health(): Promise<StoreHealth> {
    if (this.closed) return { ok: false, backend: 'postgres', detail: 'closed' };
    try {
      await this.pool.query('SELECT 1');
      return { ok: true, backend: 'postgres' };
    } catch (err) {
      return { ok: false, backend: 'postgres', detail: (this.translate(err) as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.notifier.notify();
    await this.flushRun;
    await this.listenerStarting?.catch(() => {});
    await this.listener?.end().catch(() => {});
    this.listener = undefined;
    await this.pool.end();
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
