import type { Redis } from 'ioredis';
import type { SharedStores } from '../../stores/shared.js';

/**
 * Resolves `store:` to nothing (memory: the caller keeps its own in-process state) or the
 * runtime's shared Redis client for it (a name from `stores:` or a `redis://` URL): opened once
 * per process, whoever asks. Anything else is refused with TRELLIS_E_MIDDLEWARE_STORE.
 */
export async function sharedRedis(
  store: string,
  shared: SharedStores,
  commandTimeout: number,
): Promise<Redis | undefined> {
  if (shared.urlOf(store) === undefined) return undefined;
  return shared.redis(store, { commandTimeout });
}
