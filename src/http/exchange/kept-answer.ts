import type { Upstream } from '../upstream/types.js';

/** The largest body of a failed answer kept during a hedge race; a longer one is not kept. */
export const KEPT_BODY_LIMIT = 64 * 1024;

/**
 * A failed answer (502/503/504, a retried 429) read and dropped while a hedge raced, kept whole
 * so that, when no attempt succeeds and no retry follows, the client gets the upstream's own
 * answer (its status, headers, body: a Retry-After, an error document) instead of a problem
 * made up by the exchange. undici hands out views of its parser's memory, so the head and the
 * chunks are copied; a body over `KEPT_BODY_LIMIT` is not kept (memory stays bounded).
 */
export class KeptAnswer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  /** The body went over `KEPT_BODY_LIMIT`: the answer cannot be relayed whole. */
  overflowed = false;
  readonly rawHeaders: Buffer[];

  constructor(
    readonly status: number,
    rawHeaders: Buffer[],
    readonly upstream: Upstream,
    /** ms from the attempt's start to its head. */
    readonly headMs: number,
  ) {
    this.rawHeaders = rawHeaders.map((b) => Buffer.from(b));
  }

  add(chunk: Buffer): void {
    if (this.overflowed) return;
    this.size += chunk.length;
    if (this.size > KEPT_BODY_LIMIT) {
      this.overflowed = true;
      this.chunks.length = 0;
      return;
    }
    this.chunks.push(Buffer.from(chunk));
  }

  body(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
  }
}
