import { messageOf as errorMessage, isTrellisError, TrellisError } from '../core/errors.js';
import { type Envelope, messageOf } from './message.js';

/** Messages move between filters in chunks: one await per chunk, not one per message. */
export type Chunks<T> = AsyncIterable<Envelope<T>[]>;

/** Where a message goes when a filter gave up on it: the message, the error and the filter's name. */
export interface DeadLetter<T = unknown> {
  message: import('./message.js').Message<T>;
  error: { message: string; code?: string };
  filter: string;
  attempts: number;
}

/** How many times a filter tries one message before it dead-letters it, and the pauses between. */
export interface RetryPolicy {
  /** Attempts in all (1: no retry). */
  attempts: number;
  /** Pause before attempt n + 1 (the last entry repeats). */
  backoffMs: number[];
}

/** What every filter gets from the pipeline it runs in. */
export interface FilterContext {
  signal: AbortSignal;
  retry: RetryPolicy;
  /** Hands a failed message to the dead-letter sink; throws when the pipeline has none. */
  deadLetter(env: Envelope, err: unknown, filter: string, attempts: number): Promise<void>;
  /** Per-filter counters (the stage's metrics hook them). */
  observe?: FilterObserver;
}

export interface FilterObserver {
  /** `count` messages took `seconds` each (a chunk on the synchronous path is timed as a whole). */
  processed(filter: string, seconds: number, count?: number): void;
  failed(filter: string): void;
}

/** A step of a pipeline: chunks of I in, chunks of O out. */
export interface Filter<I, O> {
  readonly name: string;
  run(input: Chunks<I>, ctx: FilterContext): Chunks<O>;
}

/** Options every per-message filter takes. */
export interface FilterOptions {
  /** Shown in metrics and dead letters; defaults to the filter's kind and position. */
  name?: string;
  /** Messages processed at once (default 1). Same-key messages still go one at a time, in order. */
  concurrency?: number;
  /** Overrides the pipeline's retry policy for this filter. */
  retry?: Partial<RetryPolicy>;
}

/** Store outages are not the message's fault: they are retried until the store is back, never dead-lettered. */
export function isInfrastructureError(err: unknown): boolean {
  return isTrellisError(err, 'TRELLIS_E_STORE_UNAVAILABLE') || isTrellisError(err, 'TRELLIS_E_STORE_CLOSED');
}

/** A pause that ends early when the signal aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Throws TRELLIS_E_PIPELINE_ABORTED once the pipeline's signal has fired. */
export function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) {
    throw new TrellisError(
      'TRELLIS_E_PIPELINE_ABORTED',
      'the pipeline was cancelled (its AbortSignal fired)',
      {
        cause: signal.reason,
      },
    );
  }
}

/**
 * Runs `work` for one message with the filter's retry policy. Returns its outputs, or [] after
 * the message went to the dead-letter sink. `env.attempt` (a broker redelivery) counts attempts
 * already used, so maxDeliveries holds across crashes too.
 */
export async function attempt<I, O>(
  env: Envelope<I>,
  name: string,
  ctx: FilterContext,
  policy: RetryPolicy,
  work: (env: Envelope<I>) => O | Promise<O>,
  firstFailure?: { err: unknown },
): Promise<O | typeof DROPPED> {
  let tries = (env.attempt ?? 1) - 1;
  let failed = firstFailure;
  for (;;) {
    checkAborted(ctx.signal);
    tries++;
    const t0 = performance.now();
    try {
      if (failed) throw failed.err;
      const out = await work(env);
      ctx.observe?.processed(name, (performance.now() - t0) / 1000);
      return out;
    } catch (err) {
      failed = undefined;
      if (ctx.signal.aborted) checkAborted(ctx.signal);
      if (isInfrastructureError(err)) {
        tries--;
        await pause(backoff(policy, 3), ctx.signal);
        continue;
      }
      ctx.observe?.failed(name);
      if (tries >= policy.attempts) {
        await ctx.deadLetter(env, err, name, tries);
        return DROPPED;
      }
      await pause(backoff(policy, tries), ctx.signal);
    }
  }
}

/** Marks a message attempt() dead-lettered (its trackers are already released). */
export const DROPPED: unique symbol = Symbol('dropped');

function backoff(policy: RetryPolicy, tries: number): number {
  return policy.backoffMs[Math.min(tries, policy.backoffMs.length) - 1] ?? 0;
}

/** Merges a filter's retry options over the pipeline's policy. */
export function policyOf(ctx: FilterContext, o?: Partial<RetryPolicy>): RetryPolicy {
  return {
    attempts: o?.attempts ?? ctx.retry.attempts,
    backoffMs: o?.backoffMs ?? ctx.retry.backoffMs,
  };
}

/** The dead letter record for a message a filter gave up on. */
export function deadLetterOf(env: Envelope, err: unknown, filter: string, attempts: number): DeadLetter {
  return {
    message: messageOf(env),
    error: {
      // JSONata and some libraries throw plain objects with a message, not Errors.
      message:
        typeof (err as { message?: unknown })?.message === 'string'
          ? (err as { message: string }).message
          : errorMessage(err),
      ...(isTrellisError(err) ? { code: err.code } : {}),
    },
    filter,
    attempts,
  };
}

/**
 * Runs `work` over a stream of messages with at most `limit` at once, keeping order per key:
 * a message waits while an earlier one with its key runs; messages without a key (or with
 * different keys) run side by side. Pulls from upstream only while fewer than `limit * 2`
 * messages are running or waiting, and stops pulling while its output is not being read:
 * that is the backpressure.
 */
export async function* runKeyed<I, O>(
  input: Chunks<I>,
  limit: number,
  signal: AbortSignal,
  work: (env: Envelope<I>) => Promise<Envelope<O>[]>,
): Chunks<O> {
  const it = input[Symbol.asyncIterator]();
  const lanes = new Map<string, Envelope<I>[]>();
  let running = 0;
  let waiting = 0;
  let out: Envelope<O>[] = [];
  let failure: { err: unknown } | undefined;
  let upstreamDone = false;
  let next: Promise<IteratorResult<Envelope<I>[]>> | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const start = (env: Envelope<I>) => {
    running++;
    work(env).then(
      (res) => {
        for (const r of res) out.push(r);
        finish(env);
      },
      (err: unknown) => {
        failure ??= { err };
        finish(env);
      },
    );
  };
  const finish = (env: Envelope<I>) => {
    running--;
    if (env.key !== undefined) {
      const lane = lanes.get(env.key)!;
      const following = lane.shift();
      if (following) {
        waiting--;
        start(following);
      } else lanes.delete(env.key);
    }
    notify();
  };
  const dispatch = (env: Envelope<I>) => {
    if (env.key === undefined) return start(env);
    const lane = lanes.get(env.key);
    if (lane) {
      lane.push(env);
      waiting++;
      return;
    }
    lanes.set(env.key, []);
    start(env);
  };
  try {
    for (;;) {
      if (failure) throw failure.err;
      if (out.length > 0) {
        const chunk = out;
        out = [];
        yield chunk;
        continue;
      }
      if (upstreamDone && running === 0 && waiting === 0) return;
      const woken = new Promise<void>((r) => {
        wake = r;
      });
      if (!upstreamDone && running + waiting < limit * 2) {
        next ??= it.next();
        const got = await Promise.race([next, woken]);
        if (got === undefined) continue;
        next = undefined;
        if (got.done) upstreamDone = true;
        else for (const env of got.value) dispatch(env);
        continue;
      }
      await woken;
    }
  } finally {
    if (!upstreamDone) await it.return?.();
    void signal;
  }
}
