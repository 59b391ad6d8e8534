import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { messageOf, TrellisError } from '../../../core/errors.js';
import type { KeyValueStore } from '../../../stores/types.js';
import { parseRegistryEntry } from './entry.js';

export interface RegisterOptions {
  /** The service's prefix, as its callers' `discovery.registry.prefix`: `services/payments/`. */
  prefix: string;
  /** This instance's origin, `http://10.0.0.5:8080`. */
  url: string;
  /** Relative share of traffic, 1..128 (default 1). */
  weight?: number;
  /** ms the key stays valid without a refresh (default 10 s); it is written again every ttl/3. */
  ttl?: number;
  /** The key under the prefix (default: a random UUID, one per process start). */
  id?: string;
  /** Where failed refreshes are logged. */
  logger?: Logger;
}

/** A live registration: `close()` stops refreshing and deletes the key (callers stop sending at once). */
export interface Registration {
  readonly key: string;
  close(): Promise<void>;
}

/**
 * Registers this instance of a service in a KeyValueStore registry, for callers whose service has
 * `discovery: { registry: { store, prefix } }`. The first write is awaited (a store that is away
 * fails the call with its own error); after that the key is written again every ttl/3, so two
 * lost refreshes in a row are survived, and a failed refresh is logged and retried on the next
 * tick. A crashed instance stops refreshing and lapses after `ttl`.
 *
 * Throws TRELLIS_E_REGISTRY_ENTRY_INVALID for a prefix without a trailing `/` or an entry a
 * caller could not use (not an origin, a weight out of range, a ttl under 100 ms).
 */
export async function registerService(store: KeyValueStore, options: RegisterOptions): Promise<Registration> {
  const ttl = options.ttl ?? 10_000;
  const value = JSON.stringify({ url: options.url, weight: options.weight ?? 1, ttl });
  const problem = parseRegistryEntry(value);
  if (typeof problem === 'string' || !options.prefix.endsWith('/')) {
    throw new TrellisError(
      'TRELLIS_E_REGISTRY_ENTRY_INVALID',
      typeof problem === 'string'
        ? `cannot register ${options.url} under ${options.prefix}: ${problem}`
        : `cannot register under ${JSON.stringify(options.prefix)}: end the prefix with / (services/payments/)`,
    );
  }
  const key = `${options.prefix}${options.id ?? randomUUID()}`;
  await store.put(key, value);
  let closed = false;
  let refreshing: Promise<unknown> = Promise.resolve();
  const timer = setInterval(
    () => {
      refreshing = store.put(key, value).catch((err: unknown) => {
        if (!closed)
          options.logger?.warn(
            { key, err: messageOf(err) },
            'registry refresh failed: retrying at the next tick',
          );
      });
    },
    Math.max(30, Math.floor(ttl / 3)),
  );
  timer.unref();
  return {
    key,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await refreshing;
      await store.delete(key).catch((err: unknown) => {
        options.logger?.warn(
          { key, err: messageOf(err) },
          'registry key not deleted: it lapses after its ttl',
        );
      });
    },
  };
}
