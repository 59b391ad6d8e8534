import type { Logger } from '../../core/logger.js';
import type { Registry } from '../../core/metrics.js';
import { storeBreaker, storeBreakerOptions } from '../../middlewares/_support/breaker.js';
import { sharedRedis } from '../../middlewares/_support/redis.js';
import {
  type CacheStore,
  GuardedCacheStore,
  MemoryCacheStore,
  RedisCacheStore,
} from '../../middlewares/cache/store.js';
import type { SharedStores } from '../../stores/shared.js';

/**
 * Per-part caching of successful answers, on the cache middleware's stores: in memory (an LRU
 * bounded by bytes) or in Redis (shared by every gateway). Entries hold the body text, not the
 * parsed value, so composing one response can never change what the next one gets. A store that
 * fails (Redis away) is a miss, never a failed part; a hung one is skipped by the same circuit
 * breaker the cache middleware uses (default settings), so it costs a few parts, not all.
 */
export class PartCache {
  constructor(
    private readonly store: CacheStore,
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {}

  /** Opens the store `cache.store` names (`memory`, a name from `stores:`, or a redis:// URL). */
  static async open(
    options: { ttlMs: number; store: string; maxSize: number },
    prefix: string,
    shared: SharedStores,
    log: Logger,
    breaker?: { metrics: Registry; name: string },
  ): Promise<PartCache> {
    // The runtime's connection for the store: opened once per process, closed by the runtime.
    const client = await sharedRedis(options.store, shared, 250);
    if (!client) return new PartCache(new MemoryCacheStore(options.maxSize), options.ttlMs, log);
    const redis: CacheStore = new RedisCacheStore(client, prefix);
    const store = breaker
      ? new GuardedCacheStore(
          redis,
          storeBreaker(
            storeBreakerOptions().parse(undefined),
            { logger: log, ...breaker },
            'calling the service',
          ),
        )
      : redis;
    return new PartCache(store, options.ttlMs, log);
  }

  /** The cached body text, if present and fresh. */
  async get(key: string): Promise<string | undefined> {
    try {
      return (await this.store.get(key))?.body.toString('utf8');
    } catch (err) {
      this.log.debug({ err }, 'aggregate cache: store read failed, calling the service');
      return undefined;
    }
  }

  /** Stores in the background: the response never waits for the cache. */
  set(key: string, text: string): void {
    const now = Date.now();
    const entry = {
      status: 200,
      headers: {},
      body: Buffer.from(text),
      storedAt: now,
      initialAge: 0,
      lifetime: this.ttlMs / 1000,
      swr: 0,
      sie: 0,
      mustRevalidate: false,
    };
    this.store.set(key, entry, this.ttlMs).catch((err: unknown) => {
      this.log.debug({ err }, 'aggregate cache: store write failed');
    });
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
