/**
 * A small in-memory TTL cache for part answers, keyed by service, method and resolved URL.
 * Stores the body text (not the parsed value) so composing one response can never change what
 * the next one gets. A Map keeps insertion order, so the oldest entry is evicted first.
 *
 * Hand-written because the cache middleware's store caches whole HTTP responses under RFC 9111
 * rules, while this needs a plain key -> text map with a fixed TTL per part.
 */
export class PartCache {
  private readonly entries = new Map<string, { text: string; expires: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
  ) {}

  /** The cached body text, if present and fresh. */
  get(key: string, now = performance.now()): string | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e.text;
  }

  set(key: string, text: string, now = performance.now()): void {
    this.entries.delete(key);
    this.entries.set(key, { text, expires: now + this.ttlMs });
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
