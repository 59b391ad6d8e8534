import { EventEmitter } from 'node:events';
import type Database from 'better-sqlite3';
import { TrellisError } from '../../core/errors.js';
import { unavailable } from '../connection.js';
import { openSqlite } from '../sqlite.js';
import type { FeatureList, PublishOptions, QueueFeature } from '../types.js';
import { BaseMessageQueue } from './base.js';
import type { Pulled, PullSource } from './consumer.js';
import {
  checkOpen,
  deadLetterHeaders,
  type ResolvedConsumeOptions,
  type ResolvedQueueOptions,
} from './options.js';

interface MessageRow {
  seq: number;
  id: string | null;
  key: string | null;
  headers: string;
  payload: string;
  deliveries: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS trellis_queue_message (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT NOT NULL, id TEXT, key TEXT, headers TEXT NOT NULL, payload TEXT NOT NULL,
  published_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS trellis_queue_message_topic ON trellis_queue_message (topic, seq);
-- One row per consumer group: the last message handed out to the group.
CREATE TABLE IF NOT EXISTS trellis_queue_group (
  topic TEXT NOT NULL, grp TEXT NOT NULL, cursor INTEGER NOT NULL,
  PRIMARY KEY (topic, grp)) WITHOUT ROWID;
-- Messages a group has taken but not acknowledged: visible_at is the visibility timeout (a
-- lease); deliveries doubles as the lease's fencing token for nack and dead-letter.
CREATE TABLE IF NOT EXISTS trellis_queue_lease (
  topic TEXT NOT NULL, grp TEXT NOT NULL, seq INTEGER NOT NULL,
  deliveries INTEGER NOT NULL, visible_at INTEGER NOT NULL,
  PRIMARY KEY (topic, grp, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trellis_queue_lease_due ON trellis_queue_lease (topic, grp, visible_at);
CREATE TABLE IF NOT EXISTS trellis_queue_dedupe (
  topic TEXT NOT NULL, id TEXT NOT NULL, expires_at INTEGER NOT NULL,
  PRIMARY KEY (topic, id)) WITHOUT ROWID;
`;

const FEATURES: Record<'memory' | 'sqlite', FeatureList<QueueFeature>> = {
  sqlite: {
    supports: new Set(['durable', 'multiProcess', 'dedupe', 'delayedNack']),
    lacks: {},
  },
  memory: {
    supports: new Set(['dedupe', 'delayedNack']),
    lacks: {
      durable: 'memory: messages live in this process only and are gone when it exits',
      multiProcess: 'memory: only consumers in the same process can see the queue',
    },
  },
};

/**
 * MessageQueue in SQLite (better-sqlite3, WAL): a messages table, a cursor per consumer group
 * and a lease row (visibility timeout) per message a group has taken. Claims run in
 * `BEGIN IMMEDIATE` transactions, so several processes on one machine share one file safely.
 *
 * `memory:` is the same code on an in-memory database: one implementation of the claim and
 * lease rules, proven by SQLite's transactions, rather than a second hand-written copy.
 */
export class SqliteMessageQueue extends BaseMessageQueue {
  readonly backend: 'memory' | 'sqlite';
  readonly features: FeatureList<QueueFeature>;
  private readonly published = new EventEmitter();
  private readonly sweeper: NodeJS.Timeout;
  private readonly stmts;

  private constructor(
    private readonly db: Database.Database,
    private readonly url: string,
    options: ResolvedQueueOptions,
    backend: 'memory' | 'sqlite',
  ) {
    super(options);
    this.backend = backend;
    this.features = FEATURES[backend];
    this.published.setMaxListeners(0);
    db.exec(SCHEMA);
    this.stmts = {
      dedupeExpire: db.prepare(
        'DELETE FROM trellis_queue_dedupe WHERE topic = ? AND id = ? AND expires_at <= ?',
      ),
      dedupeClaim: db.prepare(
        'INSERT OR IGNORE INTO trellis_queue_dedupe (topic, id, expires_at) VALUES (?, ?, ?)',
      ),
      insert: db.prepare(
        'INSERT INTO trellis_queue_message (topic, id, key, headers, payload, published_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      groupCreate: db.prepare(
        'INSERT OR IGNORE INTO trellis_queue_group (topic, grp, cursor) VALUES (?, ?, 0)',
      ),
      cursor: db.prepare<[string, string], { cursor: number }>(
        'SELECT cursor FROM trellis_queue_group WHERE topic = ? AND grp = ?',
      ),
      moveCursor: db.prepare('UPDATE trellis_queue_group SET cursor = ? WHERE topic = ? AND grp = ?'),
      due: db.prepare<[string, string, number, number], MessageRow>(
        `SELECT m.seq, m.id, m.key, m.headers, m.payload, l.deliveries + 1 AS deliveries
         FROM trellis_queue_lease l JOIN trellis_queue_message m ON m.seq = l.seq
         WHERE l.topic = ? AND l.grp = ? AND l.visible_at <= ? ORDER BY l.seq LIMIT ?`,
      ),
      relet: db.prepare(
        'UPDATE trellis_queue_lease SET deliveries = deliveries + 1, visible_at = ? WHERE topic = ? AND grp = ? AND seq = ?',
      ),
      fresh: db.prepare<[string, number, number], MessageRow>(
        `SELECT seq, id, key, headers, payload, 1 AS deliveries FROM trellis_queue_message
         WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?`,
      ),
      lease: db.prepare(
        'INSERT INTO trellis_queue_lease (topic, grp, seq, deliveries, visible_at) VALUES (?, ?, ?, 1, ?)',
      ),
      ack: db.prepare('DELETE FROM trellis_queue_lease WHERE topic = ? AND grp = ? AND seq = ?'),
      release: db.prepare(
        'DELETE FROM trellis_queue_lease WHERE topic = ? AND grp = ? AND seq = ? AND deliveries = ?',
      ),
      nack: db.prepare(
        'UPDATE trellis_queue_lease SET visible_at = ? WHERE topic = ? AND grp = ? AND seq = ? AND deliveries = ?',
      ),
      sweepDedupe: db.prepare('DELETE FROM trellis_queue_dedupe WHERE expires_at <= ?'),
      // A message every group has moved past and none still holds is done: drop it. Topics no
      // group consumes keep everything, so a group that arrives later still gets it.
      trimBounds: db.prepare<[], { topic: string; bound: number }>(
        `SELECT g.topic, MIN(MIN(g.cursor), COALESCE((SELECT MIN(l.seq) - 1 FROM trellis_queue_lease l
           WHERE l.topic = g.topic), 9223372036854775807)) AS bound
         FROM trellis_queue_group g GROUP BY g.topic`,
      ),
      trim: db.prepare('DELETE FROM trellis_queue_message WHERE topic = ? AND seq <= ?'),
      // A plain read (no write lock) that tells an idle consumer whether a claim would find work.
      ready: db.prepare<[string, string, number, string, string, string], { ready: number }>(
        `SELECT EXISTS (SELECT 1 FROM trellis_queue_lease WHERE topic = ? AND grp = ? AND visible_at <= ?)
             OR EXISTS (SELECT 1 FROM trellis_queue_message WHERE topic = ? AND seq >
                  (SELECT cursor FROM trellis_queue_group WHERE topic = ? AND grp = ?)) AS ready`,
      ),
      ping: db.prepare('SELECT 1'),
    };
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs).unref();
  }

  /** Opens (creating when needed) the queue in the SQLite file at `path` (`:memory:` for memory:). */
  static async open(path: string, url: string, options: ResolvedQueueOptions): Promise<SqliteMessageQueue> {
    // Other processes may hold the write lock for a moment: wait rather than fail.
    const db = await openSqlite(`sqlite:${path}`, { busyTimeoutMs: 10_000 });
    return new SqliteMessageQueue(db, url, options, path === ':memory:' ? 'memory' : 'sqlite');
  }

  protected async append(topic: string, payload: string, options: PublishOptions) {
    const result = this.run(() => this.insert(topic, payload, options));
    if (!result.duplicate) this.published.emit(topic);
    return result;
  }

  private insert(topic: string, payload: string, o: PublishOptions): { id: string; duplicate: boolean } {
    return this.db
      .transaction(() => {
        const now = Date.now();
        if (o.id !== undefined) {
          this.stmts.dedupeExpire.run(topic, o.id, now);
          const claimed = this.stmts.dedupeClaim.run(topic, o.id, now + this.options.dedupeWindowMs);
          if (claimed.changes === 0) return { id: o.id, duplicate: true };
        }
        const headers = JSON.stringify(o.headers ?? {});
        const r = this.stmts.insert.run(topic, o.id ?? null, o.key ?? null, headers, payload, now);
        return { id: o.id ?? String(r.lastInsertRowid), duplicate: false };
      })
      .immediate();
  }

  protected async subscribe(topic: string, group: string, o: ResolvedConsumeOptions): Promise<PullSource> {
    this.run(() => this.stmts.groupCreate.run(topic, group));
    return this.source(topic, group, o);
  }

  private source(
    topic: string,
    group: string,
    o: { ackWaitMs: number; deadLetterTopic: string },
  ): PullSource {
    const claim = (max: number): MessageRow[] =>
      this.db
        .transaction(() => {
          const now = Date.now();
          const visibleAt = now + o.ackWaitMs;
          const rows = this.stmts.due.all(topic, group, now, max);
          for (const r of rows) this.stmts.relet.run(visibleAt, topic, group, r.seq);
          if (rows.length < max) {
            const cursor = this.stmts.cursor.get(topic, group)?.cursor ?? 0;
            const fresh = this.stmts.fresh.all(topic, cursor, max - rows.length);
            for (const r of fresh) this.stmts.lease.run(topic, group, r.seq, visibleAt);
            if (fresh.length > 0) this.stmts.moveCursor.run(fresh.at(-1)!.seq, topic, group);
            rows.push(...fresh);
          }
          return rows;
        })
        .immediate();

    const toPulled = (r: MessageRow): Pulled => {
      const headers = JSON.parse(r.headers) as Record<string, string>;
      const id = r.id ?? String(r.seq);
      return {
        id,
        payload: r.payload,
        ...(r.key === null ? {} : { key: r.key }),
        headers,
        deliveryCount: r.deliveries,
        ack: async () => {
          this.run(() => this.stmts.ack.run(topic, group, r.seq));
        },
        nack: async (delayMs) => {
          this.run(() => this.stmts.nack.run(Date.now() + delayMs, topic, group, r.seq, r.deliveries));
        },
        deadLetter: async (reason) => {
          const dlq = {
            ...(r.key === null ? {} : { key: r.key }),
            headers: deadLetterHeaders(headers, { topic, group, id, deliveries: r.deliveries, reason }),
          };
          // One transaction: the message is in the dead-letter topic or still leased, never neither.
          const moved = this.run(() =>
            this.db
              .transaction(() => {
                if (this.stmts.release.run(topic, group, r.seq, r.deliveries).changes === 0) return false;
                this.insert(o.deadLetterTopic, r.payload, dlq);
                return true;
              })
              .immediate(),
          );
          if (moved) this.published.emit(o.deadLetterTopic);
        },
      };
    };

    return {
      pull: async (max, waitMs, deliver, signal) => {
        const deadline = Date.now() + waitMs;
        while (!signal.aborted) {
          checkOpen(this.closed, `consume ${topic}`);
          // Idle consumers of other processes poll: only take the write lock when there is work.
          const ready = this.run(() => this.stmts.ready.get(topic, group, Date.now(), topic, topic, group));
          const rows = ready?.ready ? this.run(() => claim(max)) : [];
          if (rows.length > 0) {
            for (const r of rows) deliver(toPulled(r));
            return;
          }
          const left = deadline - Date.now();
          if (left <= 0) return;
          // Woken at once by a publish in this process; other processes are seen by polling.
          await this.nextPublish(topic, Math.min(left, this.options.pollIntervalMs), signal);
        }
      },
      close: async () => {},
    };
  }

  private nextPublish(topic: string, ms: number, signal: AbortSignal): Promise<void> {
    const published = this.published;
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      published.once(topic, done);
      signal.addEventListener('abort', done, { once: true });
      function done(this: void) {
        clearTimeout(timer);
        published.off(topic, done);
        signal.removeEventListener('abort', done);
        resolve();
      }
    });
  }

  private sweep(): void {
    if (this.closed) return;
    try {
      this.db
        .transaction(() => {
          this.stmts.sweepDedupe.run(Date.now());
          for (const { topic, bound } of this.stmts.trimBounds.all()) this.stmts.trim.run(topic, bound);
        })
        .immediate();
    } catch (err) {
      this.options.onError(err);
    }
  }

  /** Runs a statement, turning driver failures (a locked or unwritable file) into TrellisErrors. */
  private run<T>(what: () => T): T {
    try {
      return what();
    } catch (err) {
      if (err instanceof TrellisError) throw err;
      throw unavailable(this.backend, this.url, err);
    }
  }

  protected async ping(): Promise<void> {
    this.stmts.ping.get();
  }

  protected async disconnect(): Promise<void> {
    clearInterval(this.sweeper);
    this.db.close();
  }
}
