import { schemeOf } from '../connection.js';
import type { LeaseStore, StoreOpenOptions } from '../types.js';
import { MemoryLeaseStore } from './memory.js';

export { MemoryLeaseStore } from './memory.js';

const SCHEMES = ['memory', 'sqlite', 'postgres', 'redis', 'etcd'] as const;

/**
 * Opens a LeaseStore chosen by URL: `memory:`, `sqlite:PATH`, `postgres://…`, `redis://…`,
 * `etcd://host:port`. The driver is loaded only for the scheme used. `readOnly` opens an SQLite
 * file for reading only, refusing a missing file. See docs/stores.md.
 */
export async function openLeaseStore(url: string, options: StoreOpenOptions = {}): Promise<LeaseStore> {
  const scheme = schemeOf(url, 'LeaseStore', SCHEMES);
  switch (scheme) {
    case 'memory':
      return new MemoryLeaseStore();
    case 'sqlite':
      return (await import('./sqlite.js')).SqliteLeaseStore.open(url, options);
    case 'postgres':
      return (await import('./postgres.js')).PostgresLeaseStore.open(url);
    case 'redis':
      return (await import('./redis.js')).RedisLeaseStore.open(url);
    default:
      return (await import('./etcd.js')).EtcdLeaseStore.open(url);
  }
}
