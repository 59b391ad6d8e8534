import type { Redis, RedisOptions } from 'ioredis';
import { TrellisError } from '../core/errors.js';
import { redactUrl, unavailable } from './connection.js';

/** A redis:// URL turned into ioredis options plus Trellis's own query options. */
export function parseRedisUrl(url: string): { options: RedisOptions; params: URLSearchParams } {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw new TrellisError(
      'TRELLIS_E_STORE_URL_INVALID',
      `${JSON.stringify(redactUrl(url))} is not a valid URL: write redis://[user:password@]host:6379[/db]`,
      { cause: err },
    );
  }
  const db = u.pathname.replace(/^\//, '');
  if (db && !/^\d+$/.test(db)) {
    throw new TrellisError(
      'TRELLIS_E_STORE_URL_INVALID',
      `${redactUrl(url)}: the path must be a database number, like /0`,
    );
  }
  const options: RedisOptions = {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    db: db ? Number(db) : 0,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    ...(u.searchParams.get('name') ? { connectionName: u.searchParams.get('name')! } : {}),
  };
  return { options, params: u.searchParams };
}

/** True for ioredis errors about the connection, not about the command. */
export function isRedisConnectionError(err: unknown): boolean {
  const e = err as { code?: string; name?: string; message?: string };
  if (e?.name === 'MaxRetriesPerRequestError') return true;
  if (e?.code && /^E[A-Z]+$/.test(e.code)) return true;
  return /Connection is closed|Stream isn't writeable|connect ETIMEDOUT|NOAUTH|WRONGPASS|LOADING|enableOfflineQueue/i.test(
    e?.message ?? '',
  );
}

/** Maps a connection failure to TRELLIS_E_STORE_UNAVAILABLE; any other error is returned as is. */
export function redisError(url: string, err: unknown): unknown {
  if (err instanceof TrellisError) return err;
  return isRedisConnectionError(err) ? unavailable('redis', url, err) : err;
}

/**
 * Connects an ioredis client for a store and fails at open with a clear message when the server
 * cannot be reached or refuses the credentials. Afterwards ioredis reconnects by itself; a command
 * issued while it is away waits for one reconnection attempt and then fails (mapped to
 * TRELLIS_E_STORE_UNAVAILABLE by redisError), so callers are never stuck. The driver loads lazily.
 */
export async function openRedis(url: string, extra: RedisOptions = {}): Promise<Redis> {
  const { options } = parseRedisUrl(url);
  const { Redis: RedisClient } = await import('ioredis');
  const client = new RedisClient({
    ...options,
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
    ...extra,
  });
  // Errors are reported per command; without a listener ioredis would print every reconnect failure.
  // The socket's own error (ECONNREFUSED …) says more than connect()'s "Connection is closed".
  let socketError: unknown;
  const remember = (err: unknown) => {
    socketError ??= err;
  };
  client.on('error', remember);
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    client.disconnect();
    throw unavailable('redis', url, socketError ?? err);
  } finally {
    client.off('error', remember);
    client.on('error', () => {});
  }
  return client;
}

/** The `namespace` option of a Redis-backed store: it becomes a hash tag, so no braces. */
export function redisNamespace(params: URLSearchParams, fallback: string): string {
  const ns = params.get('namespace') ?? fallback;
  if (!ns || /[{}]/.test(ns)) {
    throw new TrellisError(
      'TRELLIS_E_STORE_URL_INVALID',
      `store URL option namespace=${ns} must be non-empty and free of { and } (it becomes the Redis hash tag)`,
    );
  }
  return ns;
}
