import type { Redis } from 'ioredis';
import type { StoreBreaker } from '../_support/breaker.js';

/** One stored response (RFC 9111 terms: the stored response plus what freshness needs). */
export interface CacheEntry {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
  /** Date.now() when stored or last revalidated. */
  storedAt: number;
  /** Age in seconds it already had when stored. */
  initialAge: number;
  /** Freshness lifetime in seconds. */
  lifetime: number;
  /** stale-while-revalidate and stale-if-error windows, seconds (0: none). */
  swr: number;
  sie: number;
  /** must-revalidate / proxy-revalidate / no-cache: never served stale. */
  mustRevalidate: boolean;
}

/**
 * What the cache knows about one URL: which request headers key its variants (`Vary`), and a
 * generation that is part of every variant's key, so invalidating the URL (after a POST, PUT,
 * DELETE…) is one write that makes every stored variant unreachable.
 */
export interface UrlRecord {
  vary: string[];
  gen: string;
}

/** Where entries live. */
export interface CacheStore {
  get(key: string): Promise<CacheEntry | undefined>;
  set(key: string, entry: CacheEntry, ttlMs: number): Promise<void>;
  getRecord(primary: string): Promise<UrlRecord | undefined>;
  /** Writes a URL record; its life is only ever extended, never shortened. */
  setRecord(primary: string, record: UrlRecord, ttlMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Bodies up to this size are also held as a string once served (the hit path's one-write answer). */
export const TEXT_BODY_MAX = 16 * 1024;

function entrySize(key: string, e: CacheEntry): number {
  // A small body is counted twice: its string copy lives as long as the entry.
  let n = key.length + e.body.length * (e.body.length <= TEXT_BODY_MAX ? 2 : 1) + 128;
  for (const [k, v] of Object.entries(e.headers))
    n += k.length + (Array.isArray(v) ? v.join('').length : v.length);
  return n;
}

/**
 * An LRU bounded by bytes. Hand-written because lru-cache is not a dependency; a Map keeps
 * insertion order, so re-inserting on read makes the first key the least recently used.
 */
export class MemoryCacheStore implements CacheStore {
  private readonly entries = new Map<string, { entry: CacheEntry; size: number; expires: number }>();
  private readonly records = new Map<string, { record: UrlRecord; expires: number }>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  async get(key: string): Promise<CacheEntry | undefined> {
    return this.getNow(key);
  }

  /** `get` without a promise: the cache's hit path answers in the same tick (no microtasks). */
  getNow(key: string): CacheEntry | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    this.entries.delete(key);
    if (hit.expires <= Date.now()) {
      this.bytes -= hit.size;
      return undefined;
    }
    this.entries.set(key, hit);
    return hit.entry;
  }

  async set(key: string, entry: CacheEntry, ttlMs: number): Promise<void> {
    const size = entrySize(key, entry);
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.size;
    }
    if (size > this.maxBytes) return;
    this.entries.set(key, { entry, size, expires: Date.now() + ttlMs });
    this.bytes += size;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.size;
    }
  }

  async getRecord(primary: string): Promise<UrlRecord | undefined> {
    return this.getRecordNow(primary);
  }

  /** `getRecord` without a promise (see `getNow`). */
  getRecordNow(primary: string): UrlRecord | undefined {
    const r = this.records.get(primary);
    return r && r.expires > Date.now() ? r.record : undefined;
  }

  async setRecord(primary: string, record: UrlRecord, ttlMs: number): Promise<void> {
    const old = this.records.get(primary);
    // Bounded like the entries: drop the oldest records past 10 000 URLs.
    if (!old && this.records.size >= 10_000) this.records.delete(this.records.keys().next().value!);
    this.records.set(primary, { record, expires: Math.max(old?.expires ?? 0, Date.now() + ttlMs) });
  }

  /** Bytes held (for tests and metrics). */
  get size(): number {
    return this.bytes;
  }

  async close(): Promise<void> {
    this.entries.clear();
    this.records.clear();
  }
}

/** Entries in Redis, shared by every gateway: metadata as JSON, body as a binary field. */
export class RedisCacheStore implements CacheStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async get(key: string): Promise<CacheEntry | undefined> {
    const [meta, body] = await this.redis.hmgetBuffer(this.prefix + key, 'meta', 'body');
    if (!meta || !body) return undefined;
    return { ...(JSON.parse(meta.toString()) as Omit<CacheEntry, 'body'>), body };
  }

  async set(key: string, entry: CacheEntry, ttlMs: number): Promise<void> {
    const { body, ...meta } = entry;
    const k = this.prefix + key;
    await this.redis.multi().hset(k, 'meta', JSON.stringify(meta), 'body', body).pexpire(k, ttlMs).exec();
  }

  async getRecord(primary: string): Promise<UrlRecord | undefined> {
    const v = await this.redis.get(`${this.prefix}url:${primary}`);
    return v === null ? undefined : (JSON.parse(v) as UrlRecord);
  }

  async setRecord(primary: string, record: UrlRecord, ttlMs: number): Promise<void> {
    const k = `${this.prefix}url:${primary}`;
    // KEEPTTL then NX/GT: a new record gets the TTL, an existing one only a longer one.
    await this.redis
      .multi()
      .set(k, JSON.stringify(record), 'KEEPTTL')
      .pexpire(k, ttlMs, 'NX')
      .pexpire(k, ttlMs, 'GT')
      .exec();
  }

  /** The connection is the runtime's (shared by every user of the store): it closes it. */
  async close(): Promise<void> {}
}

/**
 * A store behind a circuit breaker: while the breaker is open every call fails at once, which
 * the cache treats as a miss (reads) or a skipped write, so a hung Redis costs a few requests
 * their store timeout, not all of them.
 */
export class GuardedCacheStore implements CacheStore {
  constructor(
    private readonly inner: CacheStore,
    private readonly breaker: StoreBreaker,
  ) {}

  get(key: string): Promise<CacheEntry | undefined> {
    return this.breaker.run(() => this.inner.get(key));
  }

  set(key: string, entry: CacheEntry, ttlMs: number): Promise<void> {
    return this.breaker.run(() => this.inner.set(key, entry, ttlMs));
  }

  getRecord(primary: string): Promise<UrlRecord | undefined> {
    return this.breaker.run(() => this.inner.getRecord(primary));
  }

  setRecord(primary: string, record: UrlRecord, ttlMs: number): Promise<void> {
    return this.breaker.run(() => this.inner.setRecord(primary, record, ttlMs));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
