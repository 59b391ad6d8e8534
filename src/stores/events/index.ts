import { TrellisError } from '../../core/errors.js';
import { schemeOf } from '../connection.js';
import type { EventStore, EventStoreOptions } from './types.js';

export { checkExpectedVersion, versionConflict } from './common.js';
export { MemoryEventStore } from './memory.js';
export type * from './types.js';

const URL_OPTIONS = ['table', 'pollMs', 'poolSize'] as const;

/** Takes Trellis's own options (`table`, `pollMs`, `poolSize`) out of a URL's query string. */
function splitOptions(url: string): { url: string; options: EventStoreOptions } {
  const q = url.indexOf('?');
  if (q < 0) return { url, options: {} };
  const params = new URLSearchParams(url.slice(q + 1));
  const options: EventStoreOptions = {};
  for (const key of URL_OPTIONS) {
    const value = params.get(key);
    if (value === null) continue;
    params.delete(key);
    if (key === 'table') {
      options.table = value;
      continue;
    }
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) {
      throw new TrellisError(
        'TRELLIS_E_STORE_URL_INVALID',
        `${key}=${value} in the event store URL must be a positive whole number`,
      );
    }
    if (key === 'pollMs') options.pollIntervalMs = n;
    else options.poolSize = n;
  }
  const rest = params.toString();
  return { url: url.slice(0, q) + (rest ? `?${rest}` : ''), options };
}

/**
 * Opens an EventStore by URL: `memory:`, `sqlite:PATH` or `postgres://…`, with optional
 * `?table=…&pollMs=…&poolSize=…`. Drivers load lazily, so an SQLite user never loads pg.
 * Options passed here win over the URL's.
 */
export async function openEventStore(raw: string, given: EventStoreOptions = {}): Promise<EventStore> {
  const scheme = schemeOf(raw, 'EventStore', ['memory', 'sqlite', 'postgres']);
  const { url, options: fromUrl } = splitOptions(raw);
  const options = { ...fromUrl, ...given };
  switch (scheme) {
    case 'memory': {
      const { MemoryEventStore } = await import('./memory.js');
      return new MemoryEventStore();
    }
    case 'sqlite': {
      const { SqliteEventStore } = await import('./sqlite.js');
      return SqliteEventStore.open(url === 'sqlite:' ? 'sqlite::memory:' : url, options);
    }
    default: {
      const { PostgresEventStore } = await import('./postgres.js');
      return PostgresEventStore.open(url, options);
    }
  }
}
