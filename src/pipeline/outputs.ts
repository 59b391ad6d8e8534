import { open } from 'node:fs/promises';
import { ExponentialBackoff, handleWhen, retry, TimeoutStrategy, timeout, wrap } from 'cockatiel';
import { request } from 'undici';
import { TrellisError } from '../core/errors.js';
import type { KeyValueStore } from '../stores/types.js';
import type { Envelope } from './message.js';
import type { Sink } from './pipeline.js';
import { jsonataFn } from './processors.js';

/**
 * POSTs each message as JSON with an `Idempotency-Key` header, retrying network errors, 429 and
 * 5xx with jittered backoff; a 4xx fails the message (it ends in the dead-letter topic).
 */
export function httpSink(o: {
  url: string;
  method: 'POST' | 'PUT';
  timeout: number;
  retries: number;
  headers?: Record<string, string>;
}): Sink<unknown> {
  const policy = wrap(
    retry(
      handleWhen((err) => !(err instanceof TrellisError)),
      { maxAttempts: o.retries, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 5000 }) },
    ),
    timeout(o.timeout, TimeoutStrategy.Aggressive),
  );
  const one = (m: Envelope<unknown>) =>
    policy.execute(async ({ signal }) => {
      const res = await request(o.url, {
        method: o.method,
        signal,
        headers: { 'content-type': 'application/json', 'idempotency-key': m.id, ...o.headers },
        body: JSON.stringify(m.value),
      });
      const text = await res.body.text();
      if (res.statusCode === 429 || res.statusCode >= 500) throw new Error(`HTTP ${res.statusCode}`);
      if (res.statusCode >= 400) {
        throw new TrellisError(
          'TRELLIS_E_PIPELINE_OUTPUT_FAILED',
          `${o.method} ${o.url} answered ${res.statusCode}: ${text.slice(0, 200)}`,
        );
      }
    });
  return {
    name: `http:${o.url}`,
    async write(messages) {
      await Promise.all(messages.map(one));
    },
  };
}

/** Appends each message as one NDJSON line `{ id, key, value }`, synced to disk before it counts as written. */
export function fileSink(path: string): Sink<unknown> {
  let handle: Promise<import('node:fs/promises').FileHandle> | undefined;
  return {
    name: `file:${path}`,
    async write(messages) {
      handle ??= open(path, 'a');
      const h = await handle;
      const text = messages
        .map(
          (m) =>
            `${JSON.stringify({ id: m.id, ...(m.key === undefined ? {} : { key: m.key }), value: m.value })}\n`,
        )
        .join('');
      await h.appendFile(text);
      await h.datasync();
    },
  };
}

/** Puts each message's value (JSON) in a KeyValueStore under `prefix + key(value)`. */
export function kvSink(store: KeyValueStore, key: string, prefix: string): Sink<unknown> {
  const keyOf = jsonataFn(key, 'kv output key');
  return {
    name: 'kv',
    async write(messages) {
      await Promise.all(
        messages.map(async (m) => {
          const k = await keyOf(m.value, m);
          if (k === undefined || k === null || k === '') {
            throw new TrellisError(
              'TRELLIS_E_PIPELINE_OUTPUT_FAILED',
              `kv output: the key expression ${JSON.stringify(key)} gave nothing for message ${m.id}`,
            );
          }
          await store.put(`${prefix}${String(k)}`, JSON.stringify(m.value));
        }),
      );
    },
  };
}

/**
 * Inserts one row per message into a PostgreSQL table, a chunk per statement. With `idColumn`
 * the idempotency key goes there and a redelivered message is skipped (ON CONFLICT DO NOTHING),
 * so the table holds each message once.
 */
export async function postgresSink(o: {
  url: string;
  table: string;
  columns?: Record<string, string>;
  idColumn?: string;
}): Promise<Sink<unknown> & { close(): Promise<void> }> {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: o.url, max: 4, application_name: 'trellis-pipeline' });
  const table = o.table
    .split('.')
    .map((p) => pg.escapeIdentifier(p))
    .join('.');
  const exprs = o.columns
    ? Object.entries(o.columns).map(([c, e]) => [c, jsonataFn(e, `postgres column ${c}`)] as const)
    : undefined;
  return {
    name: `postgres:${o.table}`,
    async write(messages) {
      const rows = await Promise.all(
        messages.map(async (m) => {
          const row: Record<string, unknown> = {};
          if (exprs) for (const [c, f] of exprs) row[c] = await f(m.value, m);
          else Object.assign(row, m.value as object);
          if (o.idColumn) row[o.idColumn] = m.id;
          return row;
        }),
      );
      const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
      if (cols.length === 0) return;
      const params: unknown[] = [];
      const values = rows
        .map(
          (r) =>
            `(${cols
              .map((c) => {
                const v = r[c];
                params.push(v !== null && typeof v === 'object' ? JSON.stringify(v) : (v ?? null));
                return `$${params.length}`;
              })
              .join(', ')})`,
        )
        .join(', ');
      const conflict = o.idColumn ? ` ON CONFLICT (${pg.escapeIdentifier(o.idColumn)}) DO NOTHING` : '';
      try {
        await pool.query(
          `INSERT INTO ${table} (${cols.map((c) => pg.escapeIdentifier(c)).join(', ')}) VALUES ${values}${conflict}`,
          params,
        );
      } catch (err) {
        const code = (err as { code?: string }).code;
        // Connection problems are outages (retried until PostgreSQL is back); SQL errors are the data's.
        if (!code || /^(08|57P)/.test(code) || (err as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
          throw new TrellisError(
            'TRELLIS_E_STORE_UNAVAILABLE',
            `postgres output: ${(err as Error).message}`,
            { cause: err },
          );
        }
        throw new TrellisError(
          'TRELLIS_E_PIPELINE_OUTPUT_FAILED',
          `postgres output ${o.table}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
    },
    close: () => pool.end(),
  };
}
