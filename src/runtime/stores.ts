import { once } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import { messageOf, TrellisError } from '../core/errors.js';
import { redactUrl, schemeOf } from '../stores/connection.js';
import { openKeyValueStore } from '../stores/kv/index.js';
import { parseRedisUrl } from '../stores/redis.js';
import type { SharedStoreHealth, SharedStores } from '../stores/shared.js';
import type { KeyValueStore } from '../stores/types.js';

/** Every scheme some building block opens: what `stores:` accepts. */
export const STORE_SCHEMES = ['memory', 'sqlite', 'postgres', 'redis', 'etcd', 'nats'] as const;

/** Throws TRELLIS_E_STORE_URL_INVALID / _UNSUPPORTED unless `url` has a scheme a building block opens. */
export function checkStoreUrl(url: string): void {
  schemeOf(url, 'stores:', STORE_SCHEMES);
}

/** A `stores:` entry: a URL of any scheme a building block opens (checked at validation). */
export const storeUrlSchema = z.string().superRefine((url, ctx) => {
  try {
    checkStoreUrl(url);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: messageOf(err) });
  }
});

interface Opened {
  url: string;
  names: Set<string>;
  redis?: Promise<Redis>;
  kv?: Promise<KeyValueStore>;
}

/**
 * The process's stores (see SharedStores): one connection per URL and kind, shared by every
 * generation, closed when no live generation names the URL any more (`retain`) and at `close`.
 */
export class StoreSet {
  private readonly opened = new Map<string, Opened>();
  private closed = false;

  constructor(private readonly logger: Logger) {}

  /** The view one configuration's handlers and middlewares get, resolving its own names. */
  view(stores: Record<string, string>): SharedStores & { readonly used: ReadonlySet<string> } {
    const used = new Set<string>();
    for (const url of Object.values(stores)) checkStoreUrl(url);
    const urlOf = (store: string): string | undefined => {
      if (store === 'memory' || store === 'memory:') return undefined;
      const url = stores[store] ?? store;
      if (url === 'memory:') return undefined;
      if (stores[store] === undefined && !url.includes(':')) {
        throw new TrellisError(
          'TRELLIS_E_MIDDLEWARE_STORE',
          `unknown store "${store}": name one from the file's stores: section, write a store URL, or use memory`,
        );
      }
      return url;
    };
    const entry = (store: string): Opened => {
      const url = urlOf(store);
      if (url === undefined)
        throw new TrellisError('TRELLIS_E_MIDDLEWARE_STORE', 'memory is not a shared store');
      if (this.closed) throw new TrellisError('TRELLIS_E_STORE_CLOSED', 'the runtime is shutting down');
      let e = this.opened.get(url);
      if (e === undefined) {
        e = { url, names: new Set() };
        this.opened.set(url, e);
      }
      e.names.add(stores[store] === undefined ? redactUrl(url) : store);
      used.add(url);
      return e;
    };
    return {
      used,
      urlOf,
      redis: (store, options) => {
        const url = urlOf(store);
        if (url === undefined || !/^rediss?:\/\//.test(url)) {
          throw new TrellisError(
            'TRELLIS_E_MIDDLEWARE_STORE',
            `the store "${store}" (${url === undefined ? 'memory' : redactUrl(url).split('@').pop()}) cannot be used here: use a redis:// store or memory`,
          );
        }
        const e = entry(store);
        e.redis ??= openSharedRedis(url, options.commandTimeout, this.logger);
        // The shortest timeout any user asked for holds for the shared connection.
        return e.redis.then((client) => {
          const current = client.options.commandTimeout;
          if (current === undefined || options.commandTimeout < current)
            client.options.commandTimeout = options.commandTimeout;
          return client;
        });
      },
      keyValue: (store) => {
        const e = entry(store);
        e.kv ??= openKeyValueStore(e.url);
        return e.kv;
      },
    };
  }

  /** Closes opened stores whose URL is not in `live` (the URLs the live generations use). */
  async retain(live: Iterable<string>): Promise<void> {
    const keep = new Set(live);
    const drop = [...this.opened.values()].filter((e) => !keep.has(e.url));
    for (const e of drop) this.opened.delete(e.url);
    await Promise.allSettled(drop.map((e) => closeOpened(e)));
  }

  /** Health of every opened store, for /readyz and the dashboard. */
  async health(): Promise<SharedStoreHealth[]> {
    const out: SharedStoreHealth[] = [];
    for (const e of this.opened.values()) {
      const name = [...e.names].join(', ');
      const url = redactUrl(e.url);
      const backend = schemeOf(e.url, 'stores:', STORE_SCHEMES);
      if (e.redis !== undefined) {
        const client = await e.redis.catch(() => undefined);
        const ok = client?.status === 'ready';
        out.push({
          name,
          url,
          backend,
          ok,
          ...(ok ? {} : { detail: `redis connection ${client?.status ?? 'failed'}` }),
        });
      }
      if (e.kv !== undefined) {
        const h = await e.kv
          .then((kv) => kv.health())
          .catch((err: unknown) => ({ ok: false, backend, detail: messageOf(err) }));
        out.push({ ...h, name, url });
      }
    }
    return out;
  }

  /** Closes every store (shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.opened.values()];
    this.opened.clear();
    await Promise.allSettled(all.map((e) => closeOpened(e)));
  }
}

async function closeOpened(e: Opened): Promise<void> {
  await Promise.allSettled([e.redis?.then((c) => c.disconnect()), e.kv?.then((kv) => kv.close())]);
}

/** Connects (waiting up to 2s for the first connection, never failing on it). */
async function openSharedRedis(url: string, commandTimeout: number, log: Logger): Promise<Redis> {
  // Loaded on first use: a runtime without a shared Redis store never loads the driver.
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
      log.warn({ err: err.message, store: redactUrl(url) }, 'shared store (Redis) unreachable');
    }
  });
  // Start serving either way: an unreachable store is handled per request (onStoreError).
  const timer = setTimeout(() => client.emit('trellis-give-up'), 2000);
  await Promise.race([once(client, 'ready'), once(client, 'trellis-give-up')]).catch(() => {});
  clearTimeout(timer);
  return client;
}
