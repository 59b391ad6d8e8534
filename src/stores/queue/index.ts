import { TrellisError } from '../../core/errors.js';
import { schemeOf } from '../connection.js';
import type { MessageQueue } from '../types.js';
import { type MessageQueueOptions, resolveQueueUrl } from './options.js';

export type { MessageQueueOptions } from './options.js';

const SCHEMES = ['memory', 'sqlite', 'redis', 'nats'] as const;

/**
 * Opens a MessageQueue by URL, loading only the chosen backend's driver:
 * `memory:`, `sqlite:./data/trellis.db`, `redis://host:6379/0`, `nats://host:4222`.
 * Query options on every backend: `dedupeWindow`, `maxPayload`, `prefix`; SQLite also `poll`.
 */
export async function openMessageQueue(
  url: string,
  options: MessageQueueOptions = {},
): Promise<MessageQueue> {
  const scheme = schemeOf(url, 'MessageQueue', SCHEMES);
  const { base, options: resolved } = resolveQueueUrl(url, options);
  switch (scheme) {
    case 'memory': {
      const { SqliteMessageQueue } = await import('./sqlite.js');
      return SqliteMessageQueue.open(':memory:', base, resolved);
    }
    case 'sqlite': {
      const path = base.slice('sqlite:'.length).replace(/^\/\//, '');
      if (!path || path === ':memory:') {
        throw new TrellisError(
          'TRELLIS_E_STORE_URL_INVALID',
          `${JSON.stringify(url)} names no file: write sqlite:./data/trellis.db (or memory: for an in-process queue)`,
        );
      }
      const { SqliteMessageQueue } = await import('./sqlite.js');
      return SqliteMessageQueue.open(path, base, resolved);
    }
    case 'redis': {
      const { RedisMessageQueue } = await import('./redis.js');
      return RedisMessageQueue.open(base, resolved);
    }
    default: {
      const { NatsMessageQueue } = await import('./nats.js');
      return NatsMessageQueue.open(base, resolved);
    }
  }
}
