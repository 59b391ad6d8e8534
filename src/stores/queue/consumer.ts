import { messageOf } from '../../core/errors.js';
import type { Consumer, Delivery } from '../types.js';
import type { ResolvedConsumeOptions } from './options.js';

/** One message as a backend hands it over, before the shared consume loop wraps it. */
export interface Pulled {
  id: string;
  payload: string;
  key?: string;
  headers: Record<string, string>;
  /** 1 on the first delivery to this group. */
  deliveryCount: number;
  ack(): Promise<void>;
  /** Make the message visible to the group again after delayMs. */
  nack(delayMs: number): Promise<void>;
  /** Publish to the dead-letter topic with the reason headers, then drop it from this group. */
  deadLetter(reason: string): Promise<void>;
}

/** What a backend implements; the loop around it (concurrency, settle, dead-letter) is shared. */
export interface PullSource {
  /**
   * Ask for up to `max` messages, waiting up to `waitMs` for the first; `deliver` each as it
   * arrives. Resolves when this pull is over; rejects with a TrellisError when the store fails.
   */
  pull(max: number, waitMs: number, deliver: (m: Pulled) => void, signal: AbortSignal): Promise<void>;
  /** Release what the source holds (blocking connections, timers). Called after the last pull. */
  close(): Promise<void>;
}

const PULL_WAIT_MS = 1000;

/**
 * Runs a consumer over a pull source: keeps at most `concurrency` handlers running, acks what
 * returns, nacks what throws with the backoff for its attempt, and dead-letters what has used
 * up maxDeliver. Store failures are reported to onError and retried, so a consumer survives a
 * server that goes away and comes back.
 */
export function startConsumer(
  source: PullSource,
  handler: (d: Delivery) => Promise<void>,
  topic: string,
  o: ResolvedConsumeOptions,
  onError: (err: unknown) => void,
  signal?: AbortSignal,
): Consumer {
  const abort = new AbortController();
  let running = 0;
  let slotFreed: (() => void) | undefined;
  const idle = new Set<() => void>();

  let settling = 0;
  const drained = new Set<() => void>();

  // The settle after a handler runs in the background: its slot is free for the next message
  // while the ack travels, as a raw client would pipeline it. stop() waits for these.
  const background = (what: () => Promise<void>) => {
    settling++;
    let p: Promise<void>;
    try {
      p = what();
    } catch (err) {
      p = Promise.reject(err);
    }
    // A failed settle leaves the message unsettled: it comes back after ackWait, nothing is lost.
    p.then(undefined, onError).then(() => {
      if (--settling === 0) for (const wake of drained) wake();
    });
  };

  // The ack of a handled message: shared callbacks, so an ack costs one promise, not three.
  const settled = () => {
    if (--settling === 0) for (const wake of drained) wake();
  };
  const settleFailed = (err: unknown) => {
    onError(err);
    settled();
  };
  const ackInBackground = (m: Pulled) => {
    settling++;
    let p: Promise<void>;
    try {
      p = m.ack();
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(settled, settleFailed);
  };

  const failedHandler = (m: Pulled, delivery: PulledDelivery, err: unknown) => {
    if (delivery.settled) return onError(err);
    delivery.settled = true;
    if (m.deliveryCount >= o.maxDeliver) {
      background(() =>
        m.deadLetter(`handler failed on delivery ${m.deliveryCount} of ${o.maxDeliver}: ${messageOf(err)}`),
      );
    } else {
      background(() => m.nack(delivery.backoff));
    }
  };

  // No async frame per message: the handler's own promise drives the settle.
  const deliver = (m: Pulled) => {
    running++;
    if (m.deliveryCount > o.maxDeliver) {
      // The consumer died (or hung) during the last allowed attempt.
      background(() =>
        m.deadLetter(`not acknowledged after ${o.maxDeliver} deliveries (maxDeliver ${o.maxDeliver})`),
      );
      return handled();
    }
    const delivery = new PulledDelivery(
      m,
      topic,
      o.backoffMs[Math.min(m.deliveryCount, o.backoffMs.length) - 1]!,
    );
    let r: Promise<void>;
    try {
      // Promise.resolve: a plain JS handler may return nothing (a native promise passes through as is).
      r = Promise.resolve(handler(delivery));
    } catch (err) {
      r = Promise.reject(err);
    }
    r.then(
      () => {
        if (!delivery.settled) {
          delivery.settled = true;
          ackInBackground(m);
        }
        handled();
      },
      (err: unknown) => {
        failedHandler(m, delivery, err);
        handled();
      },
    );
  };
  const handled = () => {
    running--;
    slotFreed?.();
    if (running === 0) for (const wake of idle) wake();
  };

  const loop = async () => {
    let failures = 0;
    while (!abort.signal.aborted) {
      const free = o.concurrency - running;
      // Pull in batches: wait until a quarter of the slots are free (all of them for small
      // concurrency) rather than asking the server for one message each time a handler ends.
      if (free < Math.max(1, Math.floor(o.concurrency / 4))) {
        // stop() wakes this too (see below), so no abort listener piles up per wait.
        await new Promise<void>((resolve) => {
          slotFreed = resolve;
        });
        slotFreed = undefined;
        continue;
      }
      try {
        await source.pull(free, PULL_WAIT_MS, deliver, abort.signal);
        failures = 0;
      } catch (err) {
        if (abort.signal.aborted) break;
        onError(err);
        failures++;
        // Back off between failed pulls so a server that is down is not hammered.
        await delay(Math.min(100 * 2 ** failures, 2000), abort.signal);
      }
    }
  };
  const done = loop();

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      abort.abort();
      slotFreed?.();
      await done;
      if (running > 0) await new Promise<void>((resolve) => idle.add(resolve));
      if (settling > 0) await new Promise<void>((resolve) => drained.add(resolve));
      await source.close();
    })();
    return stopping;
  };
  signal?.addEventListener('abort', () => void stop(), { once: true });
  return { stop };
}

/**
 * A pulled message as the handler sees it. A class, not an object of closures: one allocation
 * per message on the hot path. The first settle wins; later ones do nothing.
 */
class PulledDelivery implements Delivery {
  readonly id: string;
  readonly payload: string;
  readonly key?: string;
  readonly headers: Record<string, string>;
  readonly deliveryCount: number;
  settled = false;
  constructor(
    private readonly m: Pulled,
    readonly topic: string,
    readonly backoff: number,
  ) {
    this.id = m.id;
    this.payload = m.payload;
    if (m.key !== undefined) this.key = m.key;
    this.headers = m.headers;
    this.deliveryCount = m.deliveryCount;
  }
  ack(): Promise<void> {
    if (this.settled) return Promise.resolve();
    this.settled = true;
    return this.m.ack();
  }
  nack(opts?: { delayMs?: number }): Promise<void> {
    if (this.settled) return Promise.resolve();
    this.settled = true;
    return this.m.nack(opts?.delayMs ?? this.backoff);
  }
  term(reason?: string): Promise<void> {
    if (this.settled) return Promise.resolve();
    this.settled = true;
    return this.m.deadLetter(reason ?? 'terminated by the handler');
  }
}

/** A pause that ends early when the signal aborts (a retry delay, not a wait for a condition). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
