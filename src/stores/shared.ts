import type { Redis } from 'ioredis';
import type { KeyValueStore, StoreHealth } from './types.js';

/**
 * The named stores of a runtime's `stores:` section, as the handlers and middlewares of one
 * configuration see them. The runtime opens each store once per process, on first use, and every
 * user of the same name (or URL) gets the same connection: two rate limits, a cache and an
 * aggregate cache on `shared` make one Redis connection, not four. Users never close what they
 * get; the runtime closes a store when no live configuration names it any more, and at shutdown.
 */
export interface SharedStores {
  /**
   * The URL `store` stands for: a name from `stores:`, or a URL written in place. Undefined for
   * `memory` (a process-local store the user makes itself).
   */
  urlOf(store: string): string | undefined;
  /**
   * The shared Redis client of a `redis://` (or `rediss://`) store, tuned for the request path:
   * commands fail fast while Redis is away instead of queueing, and time out after
   * `commandTimeout` ms (the shortest any user of the store asked for).
   */
  redis(store: string, options: { commandTimeout: number }): Promise<Redis>;
  /** The shared KeyValueStore of a store of any KeyValueStore scheme (memory, sqlite, postgres, redis, etcd). */
  keyValue(store: string): Promise<KeyValueStore>;
}

/** One opened store, as /readyz and the dashboard show it. */
export interface SharedStoreHealth extends StoreHealth {
  /** The name in `stores:` (or the URL, credentials masked, for one written in place). */
  name: string;
  /** The URL with credentials masked. */
  url: string;
}
