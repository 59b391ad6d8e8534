import { Notifier } from '../notifier.js';
import type {
  KeyValueStore,
  KvChange,
  KvEntry,
  KvPutOptions,
  KvWatchOptions,
  StoreHealth,
} from '../types.js';
import {
  checkKey,
  checkRevision,
  checkValue,
  closedError,
  conflict,
  DEFAULT_MAX_VALUE_BYTES,
  DEFAULT_RETAIN_CHANGES,
  featureList,
  watchGap,
} from './common.js';
import { logWatch } from './log-watch.js';

/** Options of the in-process KeyValueStore. */
export interface MemoryKvOptions {
  /** Largest value in bytes (default 1 MiB). */
  maxValueBytes?: number;
  /** Changes kept for watchers resuming from an older revision (default 100,000). */
  retainChanges?: number;
}

/**
 * A KeyValueStore in this process's memory: for tests and single-process use. Everything is lost
 * when the process exits, and other processes cannot see it.
 */
export class MemoryKeyValueStore implements KeyValueStore {
  readonly backend = 'memory';
  readonly features = featureList(['watch', 'compareAndSet', 'durable', 'multiProcess'], {
    durable: 'memory: data lives in this process and is lost when it exits',
    multiProcess: 'memory: other processes cannot see this store',
  });
  #entries = new Map<string, KvEntry>();
  #log: KvChange[] = [];
  #revision = 0;
  #compacted = 0;
  #closed = false;
  #notifier = new Notifier();
  readonly #maxValueBytes: number;
  readonly #retain: number;

  constructor(options: MemoryKvOptions = {}) {
    this.#maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.#retain = options.retainChanges ?? DEFAULT_RETAIN_CHANGES;
  }

  async get(key: string): Promise<KvEntry | undefined> {
    if (this.#closed) throw closedError('memory');
    checkKey(key);
    const e = this.#entries.get(key);
    return e && { ...e };
  }

  async put(key: string, value: string, options: KvPutOptions = {}): Promise<KvEntry> {
    if (this.#closed) throw closedError('memory');
    checkKey(key);
    checkRevision('expectedRevision', options.expectedRevision);
    checkValue(key, value, this.#maxValueBytes);
    const old = this.#entries.get(key);
    this.#check(key, old, options.expectedRevision);
    const revision = ++this.#revision;
    const entry: KvEntry = {
      key,
      value,
      revision,
      createRevision: old?.createRevision ?? revision,
      version: (old?.version ?? 0) + 1,
    };
    this.#entries.set(key, entry);
    this.#append({ type: 'put', key, value, revision });
    return { ...entry };
  }

  async delete(key: string, options: KvPutOptions = {}): Promise<boolean> {
    if (this.#closed) throw closedError('memory');
    checkKey(key);
    checkRevision('expectedRevision', options.expectedRevision);
    const old = this.#entries.get(key);
    this.#check(key, old, options.expectedRevision);
    if (!old) return false;
    this.#entries.delete(key);
    this.#append({ type: 'delete', key, revision: ++this.#revision });
    return true;
  }

  async list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    if (this.#closed) throw closedError('memory');
    const entries = [...this.#entries.values()]
      .filter((e) => e.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map((e) => ({ ...e }));
    return { entries, revision: this.#revision };
  }

  watch(prefix: string, options: KvWatchOptions = {}): AsyncIterable<KvChange> {
    const start = Promise.resolve(options.fromRevision ?? this.#revision);
    const log = {
      read: async (p: string, after: number, limit: number) => {
        if (after < this.#compacted) throw watchGap(after, this.#compacted + 1, 'older changes were dropped');
        const changes: KvChange[] = [];
        let i = this.#indexAfter(after);
        let scanned = this.#revision;
        for (; i < this.#log.length; i++) {
          const c = this.#log[i]!;
          if (!c.key.startsWith(p)) continue;
          changes.push({ ...c });
          if (changes.length === limit) {
            scanned = c.revision;
            break;
          }
        }
        return { changes, scanned };
      },
      wait: (ms: number, signal: AbortSignal, since?: number) => this.#notifier.wait(ms, signal, since),
      generation: () => this.#notifier.generation,
      closed: () => this.#closed,
    };
    return logWatch(log, prefix, start, { ...options, pollMs: 60_000 });
  }

  async health(): Promise<StoreHealth> {
    return this.#closed
      ? { ok: false, backend: 'memory', detail: 'closed' }
      : { ok: true, backend: 'memory' };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#notifier.notify();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #check(key: string, old: KvEntry | undefined, expected: number | undefined): void {
    if (expected !== undefined && (old?.revision ?? 0) !== expected) {
      throw conflict(key, expected, old?.revision ?? 0);
    }
  }

  #append(change: KvChange): void {
    this.#log.push(change);
    // Trim in chunks so a busy store does not shift the array on every write.
    if (this.#log.length > this.#retain + Math.ceil(this.#retain / 10)) {
      const drop = this.#log.length - this.#retain;
      this.#compacted = this.#log[drop - 1]!.revision;
      this.#log.splice(0, drop);
    }
    this.#notifier.notify();
  }

  /** Index of the first logged change with revision > after (binary search: revisions ascend). */
  #indexAfter(after: number): number {
    let lo = 0;
    let hi = this.#log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#log[mid]!.revision <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
