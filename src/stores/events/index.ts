import { schemeOf } from '../connection.js';
import type { EventStoreOptions, TrellisEventStore } from './types.js';

export { checkExpectedVersion, versionConflict } from './common.js';
export { MemoryEventStore } from './memory.js';
export type * from './types.js';

/**
 * Opens an EventStore by URL: `memory:`, `sqlite:PATH` or `postgres://…`. Drivers load lazily,
 * so an SQLite user never loads pg.
 */
export async function openEventStore(
  url: string,
  options: EventStoreOptions = {},
): Promise<TrellisEventStore> {
  const scheme = schemeOf(url, 'EventStore', ['memory', 'sqlite', 'postgres']);
  switch (scheme) {
    case 'memory': {
      const { MemoryEventStore } = await import('./memory.js');
      return new MemoryEventStore();
    }
    case 'sqlite': {
      const { SqliteEventStore } = await import('./sqlite.js');
      return SqliteEventStore.open(url.slice('sqlite:'.length) || ':memory:', options);
    }
    default: {
      const { PostgresEventStore } = await import('./postgres.js');
      return PostgresEventStore.open(url, options);
    }
  }
}
