import { TrellisError } from '../core/errors.js';
import {
  type Chunks,
  checkAborted,
  type DeadLetter,
  deadLetterOf,
  type Filter,
  type FilterContext,
  type FilterObserver,
  isInfrastructureError,
  pause,
  type RetryPolicy,
} from './engine.js';
import { type Envelope, type Message, NO_TRACKERS, release, toEnvelope } from './message.js';

/** Marks a Source object (as opposed to a plain iterable of values). */
export const SOURCE: unique symbol = Symbol.for('trellis.pipeline.source');

/** Where messages come from: a queue consumer, a file, an HTTP endpoint, a schedule. */
export interface Source<T> {
  readonly [SOURCE]: true;
  readonly name: string;
  /** Yields chunks of envelopes until the signal aborts or the source is exhausted. */
  open(signal: AbortSignal): Chunks<T>;
}

/** What pipeline() accepts as a source: values (arrays, generators, Node Readables in object mode) or a Source. */
export type SourceLike<T> = Iterable<T> | AsyncIterable<T> | Source<T>;

/** Where messages end: writes a chunk at once; resolving means the chunk is safely stored. */
export interface Sink<T> {
  readonly name?: string;
  /**
   * Chunks this sink may be writing at once (default 1: each write waits for the one before).
   * A pipe to a broker sets more: its writes are publishes the broker confirms one by one, and
   * waiting for each confirmation before sending the next costs a round trip per chunk. Writes
   * still start in order; a chunk counts as written (its inputs are acked) only once its own
   * write resolved. A chunk waits for the writes before it that carry one of its keys, so a
   * write that fails and is retried still lands before later messages of its key.
   */
  readonly writesInFlight?: number;
  write(messages: Envelope<T>[]): Promise<void>;
}

/** A sink as a function of one value (called in order, one at a time), or a Sink. */
export type SinkLike<T> = ((value: T, message: Message<T>) => void | Promise<void>) | Sink<T>;

/** Options of a pipeline run. */
export interface PipelineOptions {
  /** Aborting it stops the pipeline; the run rejects with TRELLIS_E_PIPELINE_ABORTED. */
  signal?: AbortSignal;
  /**
   * Where messages go that a filter or the sink gave up on, with the error and the filter's
   * name. Without it the first such failure stops the pipeline (TRELLIS_E_PIPELINE_FILTER_FAILED).
   */
  deadLetter?: SinkLike<DeadLetter>;
  /** Attempts per message in each filter before it is dead-lettered (default 1 in process). */
  retry?: Partial<RetryPolicy>;
  /** The sink's retry policy for a failed write (default: 5 attempts, 100 ms to 2 s apart). */
  sinkRetry?: Partial<RetryPolicy>;
  /** Hooks for metrics. */
  observe?: FilterObserver & { wrote?(n: number): void };
  /** Treat items of an iterable source as Message objects ({ value, key, id, headers }). */
  messages?: boolean;
}

/** What a finished run reports. */
export interface PipelineResult {
  /** Messages the source produced. */
  in: number;
  /** Messages the sink wrote. */
  out: number;
  deadLettered: number;
}

/** A sink made from a function of one value. */
export function toSink<T>(s: SinkLike<T>): Sink<T> {
  if (typeof s !== 'function') return s;
  return {
    name: 'sink',
    async write(messages) {
      // Await only what returns a promise: a synchronous sink costs no microtask per message.
      for (const m of messages) {
        const r = s(m.value, m);
        if (r instanceof Promise) await r;
      }
    },
  };
}

/** Options of route(). */
export interface RouteBranch<T> {
  when: (value: T, message: Message<T>) => boolean;
  to: SinkLike<T>;
}

/**
 * A sink that sends each message to the first branch whose `when` accepts it (or `otherwise`).
 * A message no branch takes and with no `otherwise` is done without being written anywhere.
 */
export function route<T>(branches: RouteBranch<T>[], otherwise?: SinkLike<T>): Sink<T> {
  const sinks = branches.map((b) => toSink(b.to));
  const fallback = otherwise ? toSink(otherwise) : undefined;
  return {
    name: 'route',
    async write(messages) {
      const parts = new Map<Sink<T>, Envelope<T>[]>();
      for (const m of messages) {
        const i = branches.findIndex((b) => b.when(m.value, m));
        const sink = i >= 0 ? sinks[i] : fallback;
        if (!sink) continue;
        let part = parts.get(sink);
        if (!part) {
          part = [];
          parts.set(sink, part);
        }
        part.push(m);
      }
      await Promise.all([...parts].map(([sink, part]) => sink.write(part)));
    },
  };
}

const CHUNK = 256;

function isSource<T>(s: SourceLike<T>): s is Source<T> {
  return (s as Source<T>)[SOURCE] === true;
}

/** Turns a source into chunks of envelopes; arrays and other sync iterables go CHUNK at a time. */
async function* chunksOf<T>(
  source: SourceLike<T>,
  signal: AbortSignal,
  asMessages: boolean,
  counted: (n: number) => void,
): Chunks<T> {
  if (isSource(source)) {
    for await (const chunk of source.open(signal)) {
      counted(chunk.length);
      yield chunk;
      if (signal.aborted) return;
    }
    return;
  }
  // Values from an iterable are acked by nobody: they carry no Tracker (see NO_TRACKERS).
  if (Symbol.iterator in source && !(Symbol.asyncIterator in source)) {
    const it = (source as Iterable<T>)[Symbol.iterator]();
    // Open until exhausted or failed: stopping early closes it, as a for-of loop would.
    let open = true;
    try {
      for (;;) {
        let chunk: Envelope<T>[];
        try {
          chunk = fillChunk(it, asMessages);
        } catch (err) {
          open = false;
          throw err;
        }
        if (chunk.length < CHUNK) open = false;
        if (chunk.length > 0) {
          counted(chunk.length);
          yield chunk;
        }
        if (!open || signal.aborted) return;
      }
    } finally {
      if (open) it.return?.();
    }
  }
  for await (const item of source as AsyncIterable<T>) {
    counted(1);
    yield [toEnvelope(item, NO_TRACKERS, asMessages)];
    if (signal.aborted) return;
  }
}

/**
 * The next CHUNK values of a synchronous iterator as envelopes (fewer at its end). A plain
 * function, not the generator's own loop: V8 optimizes it within the first chunks.
 */
function fillChunk<T>(it: Iterator<T>, asMessages: boolean): Envelope<T>[] {
  const chunk: Envelope<T>[] = [];
  while (chunk.length < CHUNK) {
    const r = it.next();
    if (r.done) break;
    chunk.push(toEnvelope(r.value, NO_TRACKERS, asMessages));
  }
  return chunk;
}

type Last<T> = SinkLike<T> | PipelineOptions;

function isOptions(x: unknown): x is PipelineOptions {
  return (
    typeof x === 'object' &&
    x !== null &&
    !('write' in x) &&
    !('run' in x) &&
    Object.keys(x).every((k) =>
      ['signal', 'deadLetter', 'retry', 'sinkRetry', 'observe', 'messages'].includes(k),
    )
  );
}

/**
 * Runs source -> filters -> sink with backpressure end to end (each step pulls only what it can
 * handle), bounded concurrency per filter with order kept per key, cancellation by AbortSignal,
 * and failures sent to the dead-letter sink with the error and the filter's name.
 * Resolves when the source is exhausted and everything is written.
 */
export function pipeline<A>(
  source: SourceLike<A>,
  sink: SinkLike<A>,
  options?: PipelineOptions,
): Promise<PipelineResult>;
export function pipeline<A, B>(
  source: SourceLike<A>,
  f1: Filter<A, B>,
  sink: SinkLike<B>,
  options?: PipelineOptions,
): Promise<PipelineResult>;
export function pipeline<A, B, C>(
  source: SourceLike<A>,
  f1: Filter<A, B>,
  f2: Filter<B, C>,
  sink: SinkLike<C>,
  options?: PipelineOptions,
): Promise<PipelineResult>;
export function pipeline<A, B, C, D>(
  source: SourceLike<A>,
  f1: Filter<A, B>,
  f2: Filter<B, C>,
  f3: Filter<C, D>,
  sink: SinkLike<D>,
  options?: PipelineOptions,
): Promise<PipelineResult>;
export function pipeline<A, B, C, D, E>(
  source: SourceLike<A>,
  f1: Filter<A, B>,
  f2: Filter<B, C>,
  f3: Filter<C, D>,
  f4: Filter<D, E>,
  sink: SinkLike<E>,
  options?: PipelineOptions,
): Promise<PipelineResult>;
export function pipeline<A, B, C, D, E, F>(
  source: SourceLike<A>,
  f1: Filter<A, B>,
  f2: Filter<B, C>,
  f3: Filter<C, D>,
  f4: Filter<D, E>,
  f5: Filter<E, F>,
  sink: SinkLike<F>,
  options?: PipelineOptions,
): Promise<PipelineResult>;
export function pipeline(
  // biome-ignore lint/suspicious/noExplicitAny: the overloads above carry the types
  source: SourceLike<any>,
  // biome-ignore lint/suspicious/noExplicitAny: the overloads above carry the types
  ...rest: Array<Filter<any, any> | Last<any>>
): Promise<PipelineResult>;
export function pipeline(
  // biome-ignore lint/suspicious/noExplicitAny: the overloads above carry the types
  ...args: any[]
): Promise<PipelineResult> {
  const [source, ...rest] = args as [SourceLike<unknown>, ...Array<Filter<unknown, unknown> | Last<unknown>>];
  const options = rest.length > 1 && isOptions(rest.at(-1)) ? (rest.pop() as PipelineOptions) : {};
  const sink = rest.pop() as SinkLike<unknown> | undefined;
  if (!sink) {
    return Promise.reject(
      new TrellisError(
        'TRELLIS_E_PIPELINE_OPTIONS_INVALID',
        'pipeline(source, ...filters, sink): a sink is required',
      ),
    );
  }
  return runPipeline(source, rest as Filter<unknown, unknown>[], sink, options);
}

/** pipeline() with the filters as an array (what the YAML runner and stages use). */
export async function runPipeline<T>(
  source: SourceLike<unknown>,
  filters: Filter<unknown, unknown>[],
  sinkLike: SinkLike<T>,
  options: PipelineOptions = {},
): Promise<PipelineResult> {
  const abort = new AbortController();
  const outer = options.signal;
  const onAbort = () => abort.abort(outer?.reason);
  if (outer?.aborted) onAbort();
  outer?.addEventListener('abort', onAbort, { once: true });
  const signal = abort.signal;
  const result: PipelineResult = { in: 0, out: 0, deadLettered: 0 };
  const dlq = options.deadLetter ? toSink(options.deadLetter) : undefined;
  const sink = toSink(sinkLike);
  const ctx: FilterContext = {
    signal,
    retry: { attempts: options.retry?.attempts ?? 1, backoffMs: options.retry?.backoffMs ?? [100, 1000] },
    ...(options.observe ? { observe: options.observe } : {}),
    async deadLetter(env, err, filter, attempts) {
      if (!dlq) {
        throw new TrellisError(
          'TRELLIS_E_PIPELINE_FILTER_FAILED',
          `${filter} failed on message ${env.id}: ${(err as Error)?.message ?? String(err)} (give the pipeline a deadLetter sink to keep going past failures)`,
          { cause: err, details: { filter, id: env.id } },
        );
      }
      const record = deadLetterOf(env, err, filter, attempts);
      await writeWithRetry(dlq, [{ ...env, value: record, trackers: [] }], signal, {
        attempts: Number.POSITIVE_INFINITY,
        backoffMs: [100, 500, 2000],
      });
      result.deadLettered++;
      release(env);
    },
  };
  try {
    checkAborted(signal);
    let stream = chunksOf(source, signal, options.messages ?? false, (n) => {
      result.in += n;
    });
    for (const f of filters) stream = f.run(stream, ctx);
    const policy: RetryPolicy = {
      attempts: options.sinkRetry?.attempts ?? 5,
      backoffMs: options.sinkRetry?.backoffMs ?? [100, 500, 2000],
    };
    const writeChunk = async (chunk: Envelope[]) => {
      try {
        await writeWithRetry(sink, chunk, signal, policy);
        result.out += chunk.length;
        options.observe?.wrote?.(chunk.length);
        releaseAll(chunk);
      } catch (err) {
        if (signal.aborted) throw err;
        for (const env of chunk) await ctx.deadLetter(env, err, sink.name ?? 'sink', policy.attempts);
      }
    };
    const window = Math.max(1, Math.floor(sink.writesInFlight ?? 1));
    if (window === 1) {
      for await (const chunk of stream) await writeChunk(chunk);
    } else {
      // Up to `window` writes outstanding; the loop pulls the next chunk while they are confirmed.
      // A chunk starts only once the writes before it that carry one of its keys have settled: a
      // write retried after a broker failure must not land after a later message of its key.
      const writing = new Set<Promise<void>>();
      const lastOfKey = new Map<string, Promise<void>>();
      for await (const chunk of stream) {
        const before = new Set<Promise<void>>();
        for (const env of chunk) {
          const prior = env.key === undefined ? undefined : lastOfKey.get(env.key);
          if (prior) before.add(prior);
        }
        const started =
          before.size === 0 ? writeChunk(chunk) : Promise.allSettled(before).then(() => writeChunk(chunk));
        const w: Promise<void> = started.finally(() => {
          writing.delete(w);
          for (const env of chunk)
            if (env.key !== undefined && lastOfKey.get(env.key) === w) lastOfKey.delete(env.key);
        });
        // Handled here: a write failing after the loop gave up must not be an unhandled rejection.
        w.catch(() => {});
        writing.add(w);
        for (const env of chunk) if (env.key !== undefined) lastOfKey.set(env.key, w);
        if (writing.size >= window) await Promise.race(writing);
      }
      await Promise.all(writing);
    }
    checkAborted(signal);
    return result;
  } catch (err) {
    // One failure stops every step, so nothing keeps running in the background.
    abort.abort(err);
    if (outer?.aborted) checkAborted(outer);
    throw err;
  } finally {
    outer?.removeEventListener('abort', onAbort);
  }
}

/** Releases a written chunk's envelopes (a plain function: see fillChunk). */
function releaseAll(chunk: Envelope[]): void {
  for (const env of chunk) release(env);
}

/** Writes a chunk; store outages are retried until the signal aborts, other failures per `policy`. */
async function writeWithRetry<T>(
  sink: Sink<T>,
  chunk: Envelope<T>[],
  signal: AbortSignal,
  policy: RetryPolicy,
): Promise<void> {
  let tries = 0;
  for (;;) {
    checkAborted(signal);
    try {
      await sink.write(chunk);
      return;
    } catch (err) {
      if (!isInfrastructureError(err) && ++tries >= policy.attempts) throw err;
      await pause(policy.backoffMs[Math.min(Math.max(tries, 1), policy.backoffMs.length) - 1] ?? 100, signal);
    }
  }
}
