import { BoundedLru } from './lru.js';

/**
 * The in-memory cache of small files' bytes, limited by total bytes. Keyed by content hash and
 * encoding, so two paths with the same bytes share one copy, and a changed file (new hash)
 * never serves its old bytes.
 */
export class BodyCache {
  private readonly lru: BoundedLru<string, Buffer>;

  constructor(
    readonly maxBytes: number,
    /** Largest body held. */
    readonly maxFileSize: number,
  ) {
    this.lru = new BoundedLru(1_000_000, maxBytes, (b) => b.length);
  }

  /** Whether a body of this size belongs in the cache. */
  fits(size: number): boolean {
    return this.maxBytes > 0 && size <= this.maxFileSize && size <= this.maxBytes;
  }

  get(hash: string, encoding: string): Buffer | undefined {
    return this.lru.get(`${hash}.${encoding}`);
  }

  set(hash: string, encoding: string, body: Buffer): void {
    if (this.fits(body.length)) this.lru.set(`${hash}.${encoding}`, body);
  }

  get bytes(): number {
    return this.lru.bytes;
  }

  clear(): void {
    this.lru.clear();
  }
}
