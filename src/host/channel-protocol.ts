/**
 * The messages of an http workload's request channel (host: src/host/channel.ts, worker:
 * src/host/worker/entry.ts). Kept apart so a worker loads no undici.
 */

import type { MessagePort } from 'node:worker_threads';
import { TurnBatch } from '../core/turn-batch.js';

/** Unacknowledged body bytes either side may have in flight per request. */
export const WINDOW = 256 * 1024;

/** host -> worker */
export type ToChannel =
  /** A request: id, method, path (with query), flat [name, value, …] headers, whether a body follows. */
  | { t: 'q'; id: number; m: string; p: string; h: string[]; b: boolean }
  /** A request body chunk. */
  | { t: 'd'; id: number; c: Uint8Array }
  /** The request body ended. */
  | { t: 'e'; id: number }
  /** The host gave up on the request (client gone, timeout). */
  | { t: 'x'; id: number }
  /** `n` bytes of the response body were passed on. */
  | { t: 'k'; id: number; n: number };

/** worker -> host */
export type FromChannel =
  /** Response head; `c` the first body chunk; `e` the whole answer (no more messages follow). */
  | { t: 'h'; id: number; s: number; st: string; h: string[]; c?: Uint8Array; e?: boolean }
  | { t: 'd'; id: number; c: Uint8Array }
  | { t: 'e'; id: number }
  /** The request failed without (or in the middle of) an answer; `code` like a socket error's. */
  | { t: 'x'; id: number; code: string; msg: string }
  /** `n` bytes of the request body were read by the workload. */
  | { t: 'k'; id: number; n: number };

/**
 * A chunk as it should cross the channel: structured clone copies a view's whole ArrayBuffer,
 * so a slice of a larger buffer (Node's pooled Buffers, a socket read) is copied out first.
 */
export function tight(c: Uint8Array): Uint8Array {
  return c.byteOffset === 0 && c.byteLength === c.buffer.byteLength ? c : new Uint8Array(c);
}

/**
 * The messages one side posts in one turn of its event loop, sent as one array at the end of it
 * (`setImmediate`: after the poll phase has read every socket that was ready). Under load that
 * is one structured clone and one wake-up of the other thread for a whole batch of requests (or
 * answers) instead of one each: on a core the host and its workers share, each wake-up is a
 * thread switch. Messages keep their order; an idle channel costs nothing.
 */
export class Batcher<M> {
  readonly #batch: TurnBatch<M>;

  constructor(
    readonly port: MessagePort,
    readonly onLost: () => void = () => {},
  ) {
    this.#batch = new TurnBatch((batch) => {
      try {
        this.port.postMessage(batch);
      } catch {
        this.onLost();
      }
    });
  }

  post(m: M): void {
    this.#batch.push(m);
  }
}
