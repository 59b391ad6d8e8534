import type pg from 'pg';
import { closedError, featureList, tableParam } from '../kv/common.js';
import { inTransaction, openPgPool, pgError, statementName } from '../postgres.js';
import { PostgresServerStore } from '../server-store.js';
import type { Lease, LeaseStore } from '../types.js';
import { checkLeaseArgs, leaseLost } from './common.js';

interface Row {
  holder: string;
  token: string;
  expires_at: string;
}

const RETURNING = `RETURNING holder, token, (extract(epoch from expires_at) * 1000)::int8 AS expires_at`;

/**
 * LeaseStore on PostgreSQL (`postgres://…?table=trellis_lease`). Each call is one statement; the
 * row lock of INSERT … ON CONFLICT DO UPDATE makes racing acquirers take turns. Expiry uses the
 * server's clock (clock_timestamp()), so holders on machines with skewed clocks still agree; the
 * row stays after release or lapse so the next token is always the last one plus one.
 */
export class PostgresLeaseStore extends PostgresServerStore implements LeaseStore {
  readonly features = featureList(['durable', 'multiProcess']);

  private constructor(
    protected readonly pool: pg.Pool,
    private readonly url: string,
    private readonly t: string,
  ) {
    super();
  }

  /** Connects and creates the lease table when missing. */
  static async open(url: string): Promise<PostgresLeaseStore> {
    const { pool, params } = await openPgPool(url, { applicationName: 'trellis-lease' });
    try {
      const t = tableParam(params, 'trellis_lease');
      await inTransaction(pool, async (c) => {
        await c.query(`SELECT pg_advisory_xact_lock(hashtext('trellis_lease_ddl:${t}'))`);
        await c.query(`CREATE TABLE IF NOT EXISTS ${t} (
          name text PRIMARY KEY, holder text, token bigint NOT NULL, expires_at timestamptz NOT NULL)`);
      });
      return new PostgresLeaseStore(pool, url, t);
    } catch (err) {
      await pool.end().catch(() => {});
      throw pgError(url, err);
    }
  }

  async acquire(name: string, holder: string, ttlMs: number): Promise<Lease | undefined> {
    this.#open();
    checkLeaseArgs(name, holder, ttlMs);
    const { rows } = await this.#query(
      `INSERT INTO ${this.t} AS l (name, holder, token, expires_at)
       VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond')
       ON CONFLICT (name) DO UPDATE SET
         token = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp()
                      THEN l.token ELSE l.token + 1 END,
         holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
       WHERE l.holder IS NULL OR l.expires_at <= clock_timestamp() OR l.holder = EXCLUDED.holder
       ${RETURNING}`,
      [name, holder, ttlMs],
    );
    return rows[0] && toLease(name, rows[0]);
  }

  async renew(lease: Pick<Lease, 'name' | 'holder' | 'token'>, ttlMs: number): Promise<Lease> {
    this.#open();
    checkLeaseArgs(lease.name, lease.holder, ttlMs);
    const { rows } = await this.#query(
      `UPDATE ${this.t} SET expires_at = clock_timestamp() + $4 * interval '1 millisecond'
       WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > clock_timestamp() ${RETURNING}`,
      [lease.name, lease.holder, lease.token, ttlMs],
    );
    if (!rows[0]) throw leaseLost(lease, 'it lapsed, was released, or another holder took it');
    return toLease(lease.name, rows[0]);
  }

  async release(lease: Pick<Lease, 'name' | 'holder' | 'token'>): Promise<boolean> {
    this.#open();
    const { rowCount } = await this.#query(
      `UPDATE ${this.t} SET holder = NULL, expires_at = 'epoch'
       WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > clock_timestamp()`,
      [lease.name, lease.holder, lease.token],
    );
    return rowCount === 1;
  }

  async read(name: string): Promise<Lease | undefined> {
    this.#open();
    const { rows } = await this.#query(
      `SELECT holder, token, (extract(epoch from expires_at) * 1000)::int8 AS expires_at FROM ${this.t}
       WHERE name = $1 AND holder IS NOT NULL AND expires_at > clock_timestamp()`,
      [name],
    );
    return rows[0] && toLease(name, rows[0]);
  }

  protected toError(err: unknown): unknown {
    return pgError(this.url, err);
  }

  async #query(sql: string, params: unknown[]): Promise<pg.QueryResult<Row>> {
    try {
      return await this.pool.query<Row>({ name: statementName(sql), text: sql, values: params });
    } catch (err) {
      throw this.closed ? closedError('postgres') : pgError(this.url, err);
    }
  }

  #open(): void {
    if (this.closed) throw closedError('postgres');
  }
}

function toLease(name: string, r: Row): Lease {
  return { name, holder: r.holder, token: Number(r.token), expiresAt: Number(r.expires_at) };
}
