import { schemeOf } from '../connection.js';
import type { KeyValueStore, StoreOpenOptions } from '../types.js';
import { MemoryKeyValueStore } from './memory.js';

export { MemoryKeyValueStore, type MemoryKvOptions } from './memory.js';

const SCHEMES = ['memory', 'sqlite', 'postgres', 'redis', 'etcd'] as const;

/**
 * Opens a KeyValueStore chosen by URL: `memory:`, `sqlite:PATH`, `postgres://…`, `redis://…`,
 * `etcd://host:port`. The driver is loaded only for the scheme used. `readOnly` opens an SQLite
 * file for reading only, refusing a missing file. See docs/stores.md.
 */
export async function openKeyValueStore(url: string, options: StoreOpenOptions = {}): Promise<KeyValueStore> {
  const scheme = schemeOf(url, 'KeyValueStore', SCHEMES);
  switch (scheme) {
    case 'memory':
      return new MemoryKeyValueStore();
    case 'sqlite':
      return (await import('./sqlite.js')).SqliteKeyValueStore.open(url, options);
    case 'postgres':
      return (await import('./postgres.js')).PostgresKeyValueStore.open(url);
    case 'redis':
      return (await import('./redis.js')).RedisKeyValueStore.open(url);
    default:
      return (await import('./etcd.js')).EtcdKeyValueStore.open(url);
  }
}
