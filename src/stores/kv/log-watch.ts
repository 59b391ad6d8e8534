import { isTrellisError } from '../../core/errors.js';
import type { KvChange, KvWatchOptions } from '../types.js';
import { checkRevision, WATCH_OUTAGE_MS } from './common.js';

/** A backend's change log, as the generic watcher reads it. */
export interface ChangeLog {
  /**
   * Changes under `prefix` with revision > `after`, ascending, at most `limit`, and `scanned`: the
   * revision up to which the log has been examined (so a quiet prefix still moves forward). Throws
   * TRELLIS_E_KV_WATCH_GAP when the log no longer holds everything after `after`.
   */
  read(prefix: string, after: number, limit: number): Promise<{ changes: KvChange[]; scanned: number }>;
  /**
   * Resolves when something may have changed (or after `ms` at the latest); at once if the
   * wake-up generation moved past `since` (taken before the last read, so no wake-up is lost).
   */
  wait(ms: number, signal: AbortSignal, since?: number): Promise<void>;
  /** The wake-up generation (Notifier.generation), when the log has one. */
  generation?(): number;
  /** True once the store is closed: the watch then ends. */
  closed(): boolean;
}

/**
 * Watches a change-log table: read everything after the last delivered revision, then wait for a
 * wake-up (or the poll interval) and read again. The log is the truth; wake-ups only save latency.
 * `start` is the revision to deliver after, fetched when watch() was called (not on first next()).
 */
export function logWatch(
  log: ChangeLog,
  prefix: string,
  start: Promise<number>,
  options: KvWatchOptions & { pollMs: number; batch?: number; outageMs?: number },
): AsyncIterable<KvChange> {
  checkRevision('fromRevision', options.fromRevision);
  // Keep an early failure (server down) for the first next() instead of an unhandled rejection.
  start.catch(() => {});
  return {
    [Symbol.asyncIterator]: () => iterate(log, prefix, start, options),
  };
}

async function* iterate(
  log: ChangeLog,
  prefix: string,
  start: Promise<number>,
  options: KvWatchOptions & { pollMs: number; batch?: number; outageMs?: number },
): AsyncGenerator<KvChange> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) stop.abort();
  try {
    let after = await start;
    let outage = 0;
    while (!stop.signal.aborted && !log.closed()) {
      let read: Awaited<ReturnType<ChangeLog['read']>>;
      const generation = log.generation?.();
      try {
        read = await log.read(prefix, after, options.batch ?? 1000);
        outage = 0;
      } catch (err) {
        // The log is the truth and `after` is exact, so a short outage is bridged by retrying.
        if (!isTrellisError(err, 'TRELLIS_E_STORE_UNAVAILABLE') || log.closed()) throw err;
        outage ||= Date.now();
        if (Date.now() - outage > (options.outageMs ?? WATCH_OUTAGE_MS)) throw err;
        await log.wait(Math.min(2000, options.pollMs), stop.signal);
        continue;
      }
      const { changes, scanned } = read;
      for (const change of changes) {
        if (stop.signal.aborted) return;
        yield change;
        after = change.revision;
      }
      if (scanned > after) after = scanned;
      if (changes.length === 0) await log.wait(options.pollMs, stop.signal, generation);
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    stop.abort();
  }
}
