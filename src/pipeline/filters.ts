import { TrellisError } from '../core/errors.js';
import type { KeyValueStore } from '../stores/types.js';
import {
  attempt,
  type Chunks,
  DROPPED,
  type Filter,
  type FilterContext,
  type FilterOptions,
  policyOf,
  runKeyed,
} from './engine.js';
import { type Envelope, type Message, messageOf, release, Tracker, withValue } from './message.js';

let seq = 0;
const named = (kind: string, o?: { name?: string }) => o?.name ?? `${kind}-${++seq}`;

function checkConcurrency(name: string, n: number | undefined): number {
  const c = n ?? 1;
  if (!Number.isInteger(c) || c < 1 || c > 10_000) {
    throw new TrellisError(
      'TRELLIS_E_PIPELINE_OPTIONS_INVALID',
      `${name}: concurrency must be an integer from 1 to 10000 (got ${String(n)})`,
    );
  }
  return c;
}

/** What a per-message step gives: one envelope, none (dropped), or several (flatMap). */
type Outputs<O> = Envelope<O> | Envelope<O>[] | undefined;

/** Appends a step's outputs to `out`. */
function collect<O>(r: Outputs<O>, out: Envelope<O>[]): void {
  if (r === undefined) return;
  if (Array.isArray(r)) for (const x of r) out.push(x);
  else out.push(r);
}

/**
 * The shared body of map, filter, flatMap and dedupe: `fn` gives each message's outputs.
 * Concurrency 1 runs a chunk straight through: a synchronous fn costs no promise and no array
 * per message (map and filter give one envelope or none); more runs through runKeyed, keeping
 * order per key.
 */
function perMessage<I, O>(
  name: string,
  o: FilterOptions | undefined,
  fn: (env: Envelope<I>, ctx: FilterContext) => Outputs<O> | Promise<Outputs<O>>,
): Filter<I, O> {
  const concurrency = checkConcurrency(name, o?.concurrency);
  return {
    name,
    run(input: Chunks<I>, ctx: FilterContext): Chunks<O> {
      const policy = policyOf(ctx, o?.retry);
      const one = async (env: Envelope<I>, failure?: { err: unknown }): Promise<Envelope<O>[]> => {
        const r = await attempt(env, name, ctx, policy, (e) => fn(e, ctx), failure);
        if (r === DROPPED) return [];
        const out: Envelope<O>[] = [];
        collect(r, out);
        return out;
      };
      if (concurrency > 1) return runKeyed(input, concurrency, ctx.signal, one);
      const observe = ctx.observe;
      /**
       * Runs messages of `chunk` from `from` while `fn` answers synchronously; returns where it
       * stopped (a promise or a throw, kept in `pending`) or chunk.length. A plain function, not
       * the generator's own loop: V8 optimizes a hot loop in a plain function within the first
       * chunks, while a loop inside a generator's single activation waits for the next run.
       */
      const pending: { made?: Promise<Outputs<O>>; err?: { err: unknown } } = {};
      const runSync = (chunk: Envelope<I>[], from: number, out: Envelope<O>[]): number => {
        for (let i = from; i < chunk.length; i++) {
          try {
            const made = fn(chunk[i]!, ctx);
            if (made instanceof Promise) {
              pending.made = made;
              return i;
            }
            collect(made, out);
          } catch (err) {
            pending.err = { err };
            return i;
          }
        }
        return chunk.length;
      };
      return (async function* () {
        for await (const chunk of input) {
          const out: Envelope<O>[] = [];
          // Processing time is measured per chunk and spread over its messages: one clock read
          // per chunk instead of two per message.
          const t0 = observe ? performance.now() : 0;
          let failures = 0;
          for (let i = runSync(chunk, 0, out); i < chunk.length; i = runSync(chunk, i + 1, out)) {
            // An async fn is awaited here; a failure continues on the retrying path as attempt 1
            // already used (that path measures its own time).
            const { made, err } = pending;
            pending.made = undefined;
            pending.err = undefined;
            if (made) {
              try {
                collect(await made, out);
                continue;
              } catch (e) {
                failures++;
                collect(await one(chunk[i]!, { err: e }), out);
                continue;
              }
            }
            failures++;
            collect(await one(chunk[i]!, err), out);
          }
          if (observe && chunk.length > failures) {
            observe.processed(name, (performance.now() - t0) / 1000 / chunk.length, chunk.length - failures);
          }
          if (out.length > 0) yield out;
        }
      })();
    },
  };
}

/** Turns each value into another; `fn` may be async. */
export function map<I, O>(
  fn: (value: I, message: Message<I>) => O | Promise<O>,
  options?: FilterOptions,
): Filter<I, O> {
  const name = named('map', options);
  return perMessage<I, O>(name, options, (env) => {
    // The envelope is a Message (plus its trackers): no copy per call on the hot path.
    const r = fn(env.value, env);
    return r instanceof Promise ? r.then((v) => withValue(env, v)) : withValue(env, r);
  });
}

/** Keeps the messages `predicate` accepts; the rest are done (acked) without going further. */
export function filter<T>(
  predicate: (value: T, message: Message<T>) => boolean | Promise<boolean>,
  options?: FilterOptions,
): Filter<T, T> {
  const name = named('filter', options);
  const decide = (env: Envelope<T>, keep: boolean): Envelope<T> | undefined => {
    if (keep) return env;
    release(env);
    return undefined;
  };
  return perMessage<T, T>(name, options, (env) => {
    const r = predicate(env.value, env);
    return r instanceof Promise ? r.then((k) => decide(env, k)) : decide(env, r);
  });
}

/** Turns each value into zero or more; every output keeps the input's key and derives its id. */
export function flatMap<I, O>(
  fn: (value: I, message: Message<I>) => Iterable<O> | AsyncIterable<O> | Promise<Iterable<O>>,
  options?: FilterOptions,
): Filter<I, O> {
  const name = named('flatMap', options);
  return perMessage<I, O>(name, options, async (env) => {
    const values: O[] = [];
    const r = await fn(env.value, messageOf(env));
    for await (const v of r as AsyncIterable<O>) values.push(v);
    if (values.length === 0) {
      release(env);
      return undefined;
    }
    for (const t of env.trackers) t.fork(values.length - 1);
    // The n-th output's idempotency key is derived, so a redelivered input yields the same keys.
    return values.map((v, i) => {
      const out = withValue(env, v);
      if (values.length > 1) out.id = `${env.id}/${i}`;
      return out;
    });
  });
}

/** Options of batch(). */
export interface BatchOptions {
  /** Emit when this many messages are collected. */
  size: number;
  /** Emit what is collected when the first message has waited this long (default: no limit). */
  maxWaitMs?: number;
  name?: string;
}

/**
 * Groups messages into arrays of `size`, or fewer once `maxWaitMs` passed since the first of
 * the group. The batch's key is the common key of its messages (none when they differ); its
 * inputs are acked when the batch is written.
 */
export function batch<T>(options: BatchOptions): Filter<T, T[]> {
  const name = named('batch', options);
  if (!Number.isInteger(options.size) || options.size < 1) {
    throw new TrellisError('TRELLIS_E_PIPELINE_OPTIONS_INVALID', `${name}: size must be an integer >= 1`);
  }
  return {
    name,
    run(input) {
      return timed<T, T[]>(input, options.maxWaitMs, (group, flush) => {
        return group.length >= options.size || flush ? [combine(group, valuesOf(group))] : undefined;
      });
    },
  };
}

/** Options of window(). */
export interface WindowOptions<T, A> {
  /** Length of each tumbling window, from its first message. */
  durationMs: number;
  /** One window per key (default) or one for every message. */
  perKey?: boolean;
  /** Folds a window's values into one (default: the array of values). */
  reduce?: (values: T[], key: string | undefined) => A;
  name?: string;
}

/** Tumbling time windows: collects each key's messages for `durationMs`, then emits them as one. */
export function window<T, A = T[]>(options: WindowOptions<T, A>): Filter<T, A> {
  const name = named('window', options);
  if (!(options.durationMs > 0)) {
    throw new TrellisError('TRELLIS_E_PIPELINE_OPTIONS_INVALID', `${name}: durationMs must be > 0`);
  }
  const reduce = options.reduce ?? ((values: T[]) => values as unknown as A);
  const perKey = options.perKey ?? true;
  return {
    name,
    run(input) {
      const groups = new Map<string | undefined, { started: number; items: Envelope<T>[] }>();
      return (async function* () {
        const emit = (all: boolean): Envelope<A>[] => {
          const out: Envelope<A>[] = [];
          const now = Date.now();
          for (const [k, g] of groups) {
            if (all || now - g.started >= options.durationMs) {
              groups.delete(k);
              out.push(combine(g.items, reduce(valuesOf(g.items), k)));
            }
          }
          return out;
        };
        const it = input[Symbol.asyncIterator]();
        let next: Promise<IteratorResult<Envelope<T>[]>> | undefined;
        for (;;) {
          next ??= it.next();
          const oldest = Math.min(...[...groups.values()].map((g) => g.started));
          const wait = groups.size === 0 ? undefined : Math.max(0, oldest + options.durationMs - Date.now());
          const got = await raceTimer(next, wait);
          if (got === undefined) {
            const out = emit(false);
            if (out.length > 0) yield out;
            continue;
          }
          next = undefined;
          if (got.done) {
            const out = emit(true);
            if (out.length > 0) yield out;
            return;
          }
          for (const env of got.value) {
            const k = perKey ? env.key : undefined;
            let g = groups.get(k);
            if (!g) {
              g = { started: Date.now(), items: [] };
              groups.set(k, g);
            }
            g.items.push(env);
          }
          const out = emit(false);
          if (out.length > 0) yield out;
        }
      })();
    },
  };
}

/** Options of dedupe(). */
export interface DedupeOptions<T> {
  /** Where seen keys are remembered (any KeyValueStore: memory, sqlite, postgres, redis, etcd). */
  store: KeyValueStore;
  /** The key that makes two messages the same (default: the idempotency key). */
  by?: (value: T, message: Message<T>) => string;
  /** Key prefix in the store (default `dedupe/`). */
  prefix?: string;
  name?: string;
  concurrency?: number;
}

/**
 * Drops a message whose dedupe key was seen before, using the store's compare-and-set
 * (`expectedRevision: 0`), so two instances of a stage cannot both let the same key through.
 * Seen keys are kept until deleted (the store has no expiry): use a prefix you can clean.
 */
export function dedupe<T>(options: DedupeOptions<T>): Filter<T, T> {
  const name = named('dedupe', options);
  const prefix = options.prefix ?? 'dedupe/';
  return perMessage<T, T>(name, options, async (env) => {
    const k = options.by ? options.by(env.value, messageOf(env)) : env.id;
    try {
      await options.store.put(`${prefix}${k}`, '1', { expectedRevision: 0 });
      return env;
    } catch (err) {
      if ((err as { code?: string }).code !== 'TRELLIS_E_KV_CONFLICT') throw err;
      release(env);
      return undefined;
    }
  });
}

/** Merges envelopes into one carrying all their trackers (batch, window). */
function combine<T, A>(items: Envelope<T>[], value: A): Envelope<A> {
  const first = items[0]!;
  let key = first.key;
  // Plain loops: this runs once per batch over every message of it (flatMap and every cost more).
  let trackers = first.trackers;
  for (let i = 1; i < items.length; i++) {
    const e = items[i]!;
    if (key !== undefined && e.key !== key) key = undefined;
    if (e.trackers.length > 0) {
      // Copy before the first push: the first message's array is its own (or the frozen NO_TRACKERS).
      if (trackers === first.trackers) trackers = trackers.slice();
      for (const t of e.trackers) trackers.push(t);
    }
  }
  return {
    value,
    key,
    id: items.length === 1 ? first.id : `${first.id}+${items.length - 1}`,
    headers: first.headers,
    trackers,
    attempt: undefined,
  } as Envelope<A>;
}

/** The values of a group of envelopes. */
function valuesOf<T>(items: Envelope<T>[]): T[] {
  const values = new Array<T>(items.length);
  for (let i = 0; i < items.length; i++) values[i] = items[i]!.value;
  return values;
}

/** Collects envelopes and asks `cut` after each arrival (and, with flush, when the timer fires). */
async function* timed<T, O>(
  input: Chunks<T>,
  maxWaitMs: number | undefined,
  cut: (group: Envelope<T>[], flush: boolean) => Envelope<O>[] | undefined,
): Chunks<O> {
  const it = input[Symbol.asyncIterator]();
  const state = { group: [] as Envelope<T>[], started: 0 };
  // The per-message loop is a plain function (see perMessage's runSync: optimized sooner).
  const add = (chunk: Envelope<T>[]): Envelope<O>[] => {
    const out: Envelope<O>[] = [];
    for (const env of chunk) {
      if (state.group.length === 0) state.started = Date.now();
      state.group.push(env);
      const made = cut(state.group, false);
      if (made) {
        for (const m of made) out.push(m);
        state.group = [];
      }
    }
    return out;
  };
  let next: Promise<IteratorResult<Envelope<T>[]>> | undefined;
  for (;;) {
    next ??= it.next();
    const wait =
      state.group.length === 0 || maxWaitMs === undefined
        ? undefined
        : Math.max(0, state.started + maxWaitMs - Date.now());
    const got = await raceTimer(next, wait);
    if (got === undefined) {
      const out = cut(state.group, true);
      state.group = [];
      if (out && out.length > 0) yield out;
      continue;
    }
    next = undefined;
    if (got.done) {
      if (state.group.length > 0) {
        const out = cut(state.group, true);
        if (out && out.length > 0) yield out;
      }
      return;
    }
    const out = add(got.value);
    if (out.length > 0) yield out;
  }
}

/** The iterator's next result, or undefined when `ms` passes first (no timer when ms is undefined). */
function raceTimer<R>(p: Promise<R>, ms: number | undefined): Promise<R | undefined> {
  if (ms === undefined) return p;
  let t: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<undefined>((r) => {
      t = setTimeout(() => r(undefined), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

export { Tracker };
