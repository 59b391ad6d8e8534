import { isTrellisError } from '../core/errors.js';
import type { KeyValueStore } from '../stores/types.js';
import type { ChainPosition } from './pipe.js';

/**
 * Keeps per-key order across processes. Every message on a pipe carries its place in its key's
 * chain (seq, part, and the seq before it). A stage remembers, per key, the last position it
 * finished in its state store (the cursor), and admits a message only when it is the next one:
 * a copy of something already finished is acked without being processed again, and a message
 * whose predecessor is still out (in flight at a crashed process, or at another instance of the
 * stage) waits until it is done. Redelivery after ackWait brings the predecessor back, so no
 * crash can let a successor overtake it.
 *
 * What the stage publishes gets seq = the input's position and prev = the position of the last
 * input of that key that produced output, which the cursor also records, so the chain stays
 * exact on the next pipe even when a filter drops messages.
 */
export interface Cursor {
  /** Last finished input position: seq and part. */
  seq: string;
  part: number;
  /** Seq of the last input that produced output (the next output's prev). */
  emitted: string;
}

export type Admission = 'next' | 'done' | 'wait';

/** Orders positions: seqs are dot-separated numbers, compared part by part, then the part. */
export function comparePosition(a: { seq: string; part: number }, b: { seq: string; part: number }): number {
  const x = a.seq.split('.');
  const y = b.seq.split('.');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = Number(x[i] ?? -1) - Number(y[i] ?? -1);
    if (d !== 0) return d;
  }
  return a.part - b.part;
}

/** Whether `m` comes right after `c` in its chain, was finished already, or must wait. */
export function admit(c: Cursor | undefined, m: ChainPosition): Admission {
  if (!c) return m.part === 0 ? 'next' : 'wait';
  if (m.part === 0 && m.prev === c.seq && comparePosition(m, c) > 0) return 'next';
  if (m.seq === c.seq && m.part === c.part + 1) return 'next';
  if (comparePosition(m, c) <= 0) return 'done';
  // A producer that restarted begins a new chain: later than everything seen, nothing to wait for.
  if (m.part === 0 && m.prev === '') return 'next';
  return 'wait';
}

/** The position a stage gives the messages it publishes for one input. */
export function inputId(m: ChainPosition): string {
  return `${m.seq}.${m.part}`;
}

/** Cursors of one stage in a KeyValueStore, with compare-and-set so they only move forward. */
export class CursorStore {
  private readonly cache = new Map<string, { cursor: Cursor; revision: number }>();
  constructor(
    private readonly store: KeyValueStore,
    private readonly prefix: string,
  ) {}

  private path(key: string): string {
    return `${this.prefix}${encodeURIComponent(key)}`;
  }

  /** The durable cursor of `key` (cached; `fresh` re-reads it, as another instance may have moved it). */
  async read(key: string, fresh = false): Promise<Cursor | undefined> {
    const hit = this.cache.get(key);
    if (hit && !fresh) return hit.cursor;
    const e = await this.store.get(this.path(key));
    if (!e) {
      this.cache.delete(key);
      return undefined;
    }
    const cursor = JSON.parse(e.value) as Cursor;
    this.cache.set(key, { cursor, revision: e.revision });
    return cursor;
  }

  /** Moves `key`'s cursor to `next` unless it is already there or further. */
  async advance(key: string, next: Cursor): Promise<void> {
    for (let i = 0; i < 20; i++) {
      const hit = this.cache.get(key);
      if (hit && comparePosition(hit.cursor, next) >= 0) return;
      try {
        const e = await this.store.put(this.path(key), JSON.stringify(next), {
          expectedRevision: hit?.revision ?? 0,
        });
        this.cache.set(key, { cursor: next, revision: e.revision });
        return;
      } catch (err) {
        if (!isTrellisError(err, 'TRELLIS_E_KV_CONFLICT')) throw err;
        this.cache.delete(key);
        await this.read(key, true);
      }
    }
  }

  /** Forget cached cursors (they are re-read on next use). */
  forget(key: string): void {
    this.cache.delete(key);
  }
}
