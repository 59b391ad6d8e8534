import type { Pool, PoolClient } from 'pg';
import { TrellisError } from '../../core/errors.js';

export interface PostgresFenceOptions {
  /** Table holding the last token seen per resource (default `trellis_fences`). */
  table?: string;
}

const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

/**
 * Guards PostgreSQL writes with fencing tokens (Kleppmann). Each guarded write runs in one
 * transaction that first raises the resource's `last_token` to its own token, and only if its
 * token is not older than the last one seen; the row lock it takes serialises it with every other
 * guarded write of that resource until commit. A deposed leader's write (smaller token) is
 * refused with TRELLIS_E_FENCING_TOKEN_STALE and changes nothing.
 */
export class PostgresFence {
  readonly #pool: Pool;
  readonly #table: string;
  #ready: Promise<void> | undefined;

  constructor(pool: Pool, options: PostgresFenceOptions = {}) {
    const table = options.table ?? 'trellis_fences';
    if (!IDENT_RE.test(table)) {
      throw new TrellisError(
        'TRELLIS_E_FENCING_TABLE_INVALID',
        `fence table ${JSON.stringify(table)} is not a plain SQL identifier: use letters, digits and _ (optionally schema.table)`,
      );
    }
    this.#pool = pool;
    this.#table = table;
  }

  /** Creates the fence table if it does not exist (guard() calls it once on first use). */
  ensureSchema(): Promise<void> {
    this.#ready ??= this.#pool
      .query(
        `CREATE TABLE IF NOT EXISTS ${this.#table} (resource text PRIMARY KEY, last_token bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`,
      )
      .then(
        () => undefined,
        (err: unknown) => {
          this.#ready = undefined;
          // Two processes creating the table at once: the loser sees a unique violation; the table exists.
          if ((err as { code?: string }).code === '23505') return;
          throw err;
        },
      );
    return this.#ready;
  }

  /**
   * Runs `write` inside a transaction that is committed only if `token` is not older than the
   * last token seen for `resource`. Throws TRELLIS_E_FENCING_TOKEN_STALE (nothing written) otherwise.
   */
  async guard<T>(resource: string, token: number, write: (client: PoolClient) => Promise<T>): Promise<T> {
    if (!Number.isSafeInteger(token) || token < 0) {
      throw new TrellisError(
        'TRELLIS_E_FENCING_TOKEN_STALE',
        `fencing token ${token} is not a valid token: pass the token from the current leadership term`,
      );
    }
    await this.ensureSchema();
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      const r = await client.query<{ last_token: string }>(
        `INSERT INTO ${this.#table} AS f (resource, last_token) VALUES ($1, $2)
         ON CONFLICT (resource) DO UPDATE SET last_token = EXCLUDED.last_token, updated_at = now()
         WHERE f.last_token <= EXCLUDED.last_token
         RETURNING last_token`,
        [resource, token],
      );
      if (r.rowCount === 0) {
        await client.query('ROLLBACK');
        // On this connection: asking the pool for another one while holding this can deadlock it.
        const last = await client.query<{ last_token: string }>(
          `SELECT last_token FROM ${this.#table} WHERE resource = $1`,
          [resource],
        );
        const seen = last.rows[0]?.last_token;
        throw new TrellisError(
          'TRELLIS_E_FENCING_TOKEN_STALE',
          `fencing token ${token} for "${resource}" is older than the last one seen (${seen}): this process is no longer the leader, stop writing`,
          { status: 409, details: { resource, token, lastToken: seen } },
        );
      }
      const result = await write(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** The largest token accepted for `resource` so far (undefined: none yet). */
  async lastToken(resource: string): Promise<number | undefined> {
    await this.ensureSchema();
    const r = await this.#pool.query<{ last_token: string }>(
      `SELECT last_token FROM ${this.#table} WHERE resource = $1`,
      [resource],
    );
    return r.rows[0] ? Number(r.rows[0].last_token) : undefined;
  }
}
