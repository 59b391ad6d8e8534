import { once } from 'node:events';
import type { Redis } from 'ioredis';
import { TrellisError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { parseRedisUrl } from '../../stores/redis.js';

/**
 * Resolves `store:` to nothing (memory) or a Redis client. A name refers to the file's `stores:`
 * section; a `redis://` URL is used as it is.
 */
export function storeUrl(store: string, stores: Record<string, string>): string | undefined {
  if (store === 'memory' || store === 'memory:') return undefined;
  const url = stores[store] ?? store;
  if (url === 'memory:') return undefined;
  if (/^rediss?:\/\//.test(url)) return url;
  throw new TrellisError(
    'TRELLIS_E_MIDDLEWARE_STORE',
    stores[store] === undefined && !url.includes(':')
      ? `unknown store "${store}": name one from the file's stores: section, write a redis:// URL, or use memory`
      : `the store "${store}" (${url.split('@').pop()}) cannot be used by this middleware: use a redis:// store or memory`,
  );
}

/**
 * A Redis client tuned for the request path (rate limits, cache): commands fail fast instead of queueing while Redis is
 * away (so the `onStoreError` choice applies at once, not after a pile-up), with a short command
 * timeout so a hung Redis cannot hang requests.
 */
/** Connects (waiting up to 2s for the first connection, never failing on it). */
export async function redisClient(url: string, commandTimeout: number, log: Logger): Promise<Redis> {
  // Loaded on first use: a gateway without a shared store never loads the driver.
  const { Redis: RedisClient } = await import('ioredis');
  const client = new RedisClient({
    ...parseRedisUrl(url).options,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 1000,
    commandTimeout,
    retryStrategy: (times) => Math.min(100 * times, 2000),
  });
  let warned = 0;
  client.on('error', (err) => {
    // Reconnect attempts fail repeatedly while Redis is down: log once every 30s, not each time.
    if (Date.now() - warned > 30_000) {
      warned = Date.now();
      log.warn({ err: err.message }, 'middleware store (Redis) unreachable');
    }
  });
  // Start serving either way: an unreachable store is handled per request by onStoreError.
  const timer = setTimeout(() => client.emit('trellis-give-up'), 2000);
  await Promise.race([once(client, 'ready'), once(client, 'trellis-give-up')]).catch(() => {});
  clearTimeout(timer);
  return client;
}
