import type { Etcd3 } from 'etcd3';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { closedError } from './kv/common.js';
import type { StoreHealth } from './types.js';

/**
 * What every KeyValueStore and LeaseStore on a server engine shares: the closed flag, `health()`
 * by pinging the engine, a `close()` that finishes the store's own work and then disconnects
 * exactly once, and `asyncDispose`. One small base per engine below says how to ping and
 * disconnect; the stores keep only what is theirs (`beforeClose` for queued writes and watchers).
 */
export abstract class ServerStore {
  abstract readonly backend: string;
  protected closed = false;
  /** Throws when the engine cannot serve requests. */
  protected abstract ping(): Promise<void>;
  /** Releases the connection or pool (called once, by close). */
  protected abstract disconnect(): Promise<void>;
  /** The typed error (TRELLIS_E_STORE_UNAVAILABLE with what to fix) for an engine failure. */
  protected abstract toError(err: unknown): unknown;
  /** The store's own work to finish before disconnecting (queued writes, watchers). */
  protected async beforeClose(): Promise<void> {}

  async health(): Promise<StoreHealth> {
    if (this.closed) return { ok: false, backend: this.backend, detail: 'closed' };
    try {
      await this.ping();
      return { ok: true, backend: this.backend };
    } catch (err) {
      return { ok: false, backend: this.backend, detail: (this.toError(err) as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.beforeClose();
    await this.disconnect();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Throws TRELLIS_E_STORE_CLOSED once closed. */
  protected checkOpen(): void {
    if (this.closed) throw closedError(this.backend);
  }
}

/** A store on a pg Pool: pinged with SELECT 1, closed by ending the pool. */
export abstract class PostgresServerStore extends ServerStore {
  readonly backend = 'postgres';
  protected abstract readonly pool: pg.Pool;
  protected async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }
  protected async disconnect(): Promise<void> {
    await this.pool.end();
  }
}

/** A store on one ioredis client: pinged with PING, closed with QUIT (or a hard disconnect). */
export abstract class RedisServerStore extends ServerStore {
  readonly backend = 'redis';
  protected abstract readonly redis: Redis;
  protected async ping(): Promise<void> {
    await this.redis.ping();
  }
  protected async disconnect(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** A store on an etcd3 client: pinged with a 3 s maintenance status call, closed with the client. */
export abstract class EtcdServerStore extends ServerStore {
  readonly backend = 'etcd';
  abstract readonly client: Etcd3;
  protected async ping(): Promise<void> {
    await this.client.maintenance.status({ deadline: Date.now() + 3000 });
  }
  protected async disconnect(): Promise<void> {
    this.client.close();
  }
}
