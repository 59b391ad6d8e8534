import { schemeOf } from '../connection.js';
import type { LeaseStore } from '../types.js';
import { MemoryLeaseStore } from './memory.js';

export { MemoryLeaseStore } from './memory.js';

const SCHEMES = ['memory', 'sqlite', 'postgres', 'redis', 'etcd'] as const;

/**
 * Opens a LeaseStore chosen by URL: `memory:`, `sqlite:PATH`, `postgres://…`, `redis://…`,
 * `etcd://host:port`. The driver is loaded only for the scheme used. See docs/stores.md.
 */
export async function openLeaseStore(url: string): Promise<LeaseStore> {
  const scheme = schemeOf(url, 'LeaseStore', SCHEMES);
  switch (scheme) {
    case 'memory':
      return new MemoryLeaseStore();
    case 'sqlite':
      return (await import('./sqlite.js')).SqliteLeaseStore.open(url);
    case 'postgres':
      return (await import('./postgres.js')).PostgresLeaseStore.open(url);
    case 'redis':
      return (await import('./redis.js')).RedisLeaseStore.open(url);
    default:
      return (await import('./etcd.js')).EtcdLeaseStore.open(url);
  }
}
