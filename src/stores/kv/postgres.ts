import type pg from 'pg';
import { Notifier } from '../notifier.js';
import { inTransaction, likePrefix, openPgPool, pgError, statementName } from '../postgres.js';
import { PostgresServerStore } from '../server-store.js';
import type { KeyValueStore, KvChange, KvEntry, KvPutOptions, KvWatchOptions } from '../types.js';
import {
  checkKey,
  checkRevision,
  checkValue,
  closedError,
  conflict,
  DEFAULT_MAX_VALUE_BYTES,
  DEFAULT_RETAIN_CHANGES,
  featureList,
  intParam,
  tableParam,
  watchGap,
} from './common.js';
import { logWatch } from './log-watch.js';
import { WriteBatcher } from './write-batch.js';

/**
 * Why writes are serialised on one counter row: a watcher reads the change log as "everything
 * after revision N", which is only safe if revisions become visible in order. Each batch of writes
 * locks the counter row (SELECT … FOR UPDATE) before it takes the next revisions and holds the
 * lock until commit, so revision N+1 cannot commit before N. A sequence with xid8 visibility
 * would let writers commit in parallel, but then revision order and commit order differ and a
 * watcher would have to checkpoint on (transaction id, revision) instead of one number (see
 * src/stores/events/postgres.ts for the same reasoning). So the serialised commit is paid per
 * batch instead: the store's concurrent writes go together (WriteBatcher), one round trip (a
 * PL/pgSQL function over arrays) and one commit for the lot. LISTEN/NOTIFY only wakes watchers;
 * the log table is the truth, and watchers also poll it in case a notification is lost.
 */
function schemaSql(t: string, retain: number): string {
  const every = Math.max(1, Math.min(1000, Math.floor(retain / 10)));
  return `
CREATE TABLE IF NOT EXISTS ${t} (
  key text COLLATE "C" PRIMARY KEY, value text NOT NULL, revision bigint NOT NULL,
  create_revision bigint NOT NULL, version bigint NOT NULL);
CREATE TABLE IF NOT EXISTS ${t}_log (
  revision bigint PRIMARY KEY, type text NOT NULL, key text COLLATE "C" NOT NULL, value text);
CREATE TABLE IF NOT EXISTS ${t}_meta (
  id int PRIMARY KEY CHECK (id = 1), revision bigint NOT NULL, compacted bigint NOT NULL);
INSERT INTO ${t}_meta VALUES (1, 0, 0) ON CONFLICT DO NOTHING;

-- Earlier versions took one write per call; the batch form replaces it (one name, one function).
DROP FUNCTION IF EXISTS ${t}_write(text, text, bigint, boolean, bigint);
CREATE OR REPLACE FUNCTION ${t}_write(p_keys text[], p_values text[], p_expected bigint[],
  p_delete boolean[], p_retain bigint)
  RETURNS TABLE (ok boolean, rev bigint, create_rev bigint, ver bigint) AS $$
DECLARE
  head bigint;
  start bigint;
  old ${t}%ROWTYPE;
BEGIN
  SELECT m.revision INTO head FROM ${t}_meta m WHERE m.id = 1 FOR UPDATE;
  start := head;
  FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
    ok := false; rev := NULL; create_rev := NULL; ver := NULL;
    SELECT * INTO old FROM ${t} k WHERE k.key = p_keys[i];
    IF p_expected[i] IS NOT NULL AND COALESCE(old.revision, 0) <> p_expected[i] THEN
      rev := COALESCE(old.revision, 0); RETURN NEXT; CONTINUE;
    END IF;
    IF p_delete[i] AND old.key IS NULL THEN
      rev := -1; RETURN NEXT; CONTINUE;
    END IF;
    head := head + 1;
    rev := head;
    IF p_delete[i] THEN
      DELETE FROM ${t} k WHERE k.key = p_keys[i];
      INSERT INTO ${t}_log VALUES (rev, 'delete', p_keys[i], NULL);
    ELSE
      create_rev := COALESCE(old.create_revision, rev);
      ver := COALESCE(old.version, 0) + 1;
      INSERT INTO ${t} VALUES (p_keys[i], p_values[i], rev, create_rev, ver)
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, version = EXCLUDED.version;
      INSERT INTO ${t}_log VALUES (rev, 'put', p_keys[i], p_values[i]);
    END IF;
    IF rev % ${every} = 0 AND rev > p_retain THEN
      DELETE FROM ${t}_log l WHERE l.revision <= rev - p_retain;
      UPDATE ${t}_meta SET compacted = GREATEST(compacted, rev - p_retain) WHERE id = 1;
    END IF;
    ok := true;
    RETURN NEXT;
  END LOOP;
  IF head > start THEN
    UPDATE ${t}_meta SET revision = head WHERE id = 1;
    PERFORM pg_notify('${t}', '');
  END IF;
END $$ LANGUAGE plpgsql;`;
}

interface WriteOp {
  key: string;
  value: string | null;
  expected: number | undefined;
  del: boolean;
}

interface WriteRow {
  ok: boolean;
  rev: string;
  create_rev: string;
  ver: string;
}

interface Row {
  key: string;
  value: string;
  revision: string;
  create_revision: string;
  version: string;
}

/**
 * KeyValueStore on PostgreSQL (`postgres://user@host/db?table=trellis_kv&retain=100000&pollMs=1000`).
 * Several stores (and processes) may share one table: each uses its own key prefix.
 */
export class PostgresKeyValueStore extends PostgresServerStore implements KeyValueStore {
  readonly features = featureList(['watch', 'compareAndSet', 'durable', 'multiProcess']);
  #notifier = new Notifier();
  #listener: Promise<pg.Client> | undefined;
  readonly #writes = new WriteBatcher<WriteOp, WriteRow>((ops) => this.#writeBatch(ops));

  private constructor(
    protected readonly pool: pg.Pool,
    private readonly pgModule: typeof pg,
    private readonly connectionString: string,
    private readonly url: string,
    private readonly t: string,
    private readonly opts: { maxValueBytes: number; retain: number; pollMs: number },
  ) {
    super();
  }

  /** Connects and creates the tables and the write function when missing. */
  static async open(url: string): Promise<PostgresKeyValueStore> {
    const {
      pool,
      pg: pgModule,
      params,
      connectionString,
    } = await openPgPool(url, { applicationName: 'trellis-kv' });
    try {
      const t = tableParam(params, 'trellis_kv');
      const opts = {
        maxValueBytes: intParam(params, 'maxValueBytes', DEFAULT_MAX_VALUE_BYTES),
        retain: intParam(params, 'retain', DEFAULT_RETAIN_CHANGES),
        pollMs: intParam(params, 'pollMs', 1000),
      };
      await inTransaction(pool, async (c) => {
        // Several processes may open the same table at once: DDL one at a time.
        await c.query(`SELECT pg_advisory_xact_lock(hashtext('trellis_kv_ddl:${t}'))`);
        await c.query(schemaSql(t, opts.retain));
      });
      return new PostgresKeyValueStore(pool, pgModule, connectionString, url, t, opts);
    } catch (err) {
      await pool.end().catch(() => {});
      throw pgError(url, err);
    }
  }

  async get(key: string): Promise<KvEntry | undefined> {
    this.#open();
    checkKey(key);
    const { rows } = await this.#query<Row>(
      `SELECT key, value, revision, create_revision, version FROM ${this.t} WHERE key = $1`,
      [key],
    );
    return rows[0] && toEntry(rows[0]);
  }

  async put(key: string, value: string, options: KvPutOptions = {}): Promise<KvEntry> {
    this.#open();
    checkKey(key);
    checkRevision('expectedRevision', options.expectedRevision);
    checkValue(key, value, this.opts.maxValueBytes);
    const r = await this.#write(key, value, options.expectedRevision, false);
    if (!r.ok) throw conflict(key, options.expectedRevision!, Number(r.rev));
    return {
      key,
      value,
      revision: Number(r.rev),
      createRevision: Number(r.create_rev),
      version: Number(r.ver),
    };
  }

  async delete(key: string, options: KvPutOptions = {}): Promise<boolean> {
    this.#open();
    checkKey(key);
    checkRevision('expectedRevision', options.expectedRevision);
    const r = await this.#write(key, null, options.expectedRevision, true);
    if (!r.ok && r.rev !== '-1') throw conflict(key, options.expectedRevision!, Number(r.rev));
    return r.ok;
  }

  async list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    this.#open();
    // One statement, one snapshot: the entries and the revision belong together.
    const { rows } = await this.#query<Row & { head: string }>(
      `SELECT m.revision AS head, k.* FROM ${this.t}_meta m
       LEFT JOIN LATERAL (SELECT key, value, revision, create_revision, version FROM ${this.t}
                          WHERE key LIKE $1 ESCAPE '\\') k ON true
       WHERE m.id = 1 ORDER BY k.key`,
      [likePrefix(prefix)],
    );
    return {
      entries: rows.filter((r) => r.key !== null).map(toEntry),
      revision: Number(rows[0]?.head ?? 0),
    };
  }

  watch(prefix: string, options: KvWatchOptions = {}): AsyncIterable<KvChange> {
    const start =
      options.fromRevision !== undefined
        ? Promise.resolve(options.fromRevision)
        : (async () => {
            this.#open();
            const { rows } = await this.#query<{ revision: string }>(
              `SELECT revision FROM ${this.t}_meta WHERE id = 1`,
            );
            return Number(rows[0]!.revision);
          })();
    const log = {
      read: async (p: string, after: number, limit: number) => {
        this.#open();
        const { rows } = await this.#query<{
          head: string;
          compacted: string;
          revision: string | null;
          type: 'put' | 'delete';
          key: string;
          value: string | null;
        }>(
          `SELECT m.revision AS head, m.compacted, l.revision, l.type, l.key, l.value FROM ${this.t}_meta m
           LEFT JOIN LATERAL (SELECT revision, type, key, value FROM ${this.t}_log
                              WHERE revision > $1 AND key LIKE $2 ESCAPE '\\' ORDER BY revision LIMIT $3) l ON true
           WHERE m.id = 1 ORDER BY l.revision`,
          [after, likePrefix(p), limit],
        );
        const compacted = Number(rows[0]?.compacted ?? 0);
        if (after < compacted)
          throw watchGap(after, compacted + 1, 'older changes were dropped from the change log');
        const changes: KvChange[] = rows
          .filter((r) => r.revision !== null)
          .map((r) =>
            r.type === 'put'
              ? { type: 'put', key: r.key, value: r.value ?? '', revision: Number(r.revision) }
              : { type: 'delete', key: r.key, revision: Number(r.revision) },
          );
        const scanned = changes.length === limit ? changes.at(-1)!.revision : Number(rows[0]?.head ?? after);
        return { changes, scanned };
      },
      wait: (ms: number, signal: AbortSignal, since?: number) => {
        this.#listen();
        return this.#notifier.wait(ms, signal, since);
      },
      generation: () => this.#notifier.generation,
      closed: () => this.closed,
    };
    return logWatch(log, prefix, start, { ...options, pollMs: this.opts.pollMs });
  }

  protected toError(err: unknown): unknown {
    return pgError(this.url, err);
  }

  protected override async beforeClose(): Promise<void> {
    // Writes accepted before close() are written, not dropped.
    await this.#writes.idle();
    this.#notifier.notify();
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.then((c) => c.end()).catch(() => {});
  }

  /** Keeps one LISTEN connection for wake-ups; if it dies, watchers poll until the next wait re-opens it. */
  #listen(): void {
    if (this.#listener || this.closed) return;
    const client = new this.pgModule.Client({ connectionString: this.connectionString });
    const drop = () => {
      if (this.#listener === started) this.#listener = undefined;
      client.end().catch(() => {});
    };
    client.on('error', drop);
    client.on('end', drop);
    client.on('notification', () => this.#notifier.notify());
    const started = client
      .connect()
      .then(() => client.query(`LISTEN "${this.t}"`))
      .then(() => {
        // Something may have changed while LISTEN was starting up.
        this.#notifier.notify();
        return client;
      });
    started.catch(drop);
    this.#listener = started;
  }

  #write(key: string, value: string | null, expected: number | undefined, del: boolean): Promise<WriteRow> {
    return this.#writes.submit({ key, value, expected, del }, value?.length ?? 0);
  }

  /** Writes a batch in one call of the write function; a failed CAS comes back as ok = false. */
  async #writeBatch(ops: WriteOp[]): Promise<WriteRow[]> {
    const { rows } = await this.#query<WriteRow>(`SELECT * FROM ${this.t}_write($1, $2, $3, $4, $5)`, [
      ops.map((o) => o.key),
      ops.map((o) => o.value),
      ops.map((o) => o.expected ?? null),
      ops.map((o) => o.del),
      this.opts.retain,
    ]);
    return rows;
  }

  async #query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>({ name: statementName(sql), text: sql, values: params });
    } catch (err) {
      throw this.closed ? closedError('postgres') : pgError(this.url, err);
    }
  }

  #open(): void {
    if (this.closed) throw closedError('postgres');
  }
}

function toEntry(r: Row): KvEntry {
  return {
    key: r.key,
    value: r.value,
    revision: Number(r.revision),
    createRevision: Number(r.create_revision),
    version: Number(r.version),
  };
}
