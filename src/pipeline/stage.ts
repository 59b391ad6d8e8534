import { TrellisError } from '../core/errors.js';
import type { Consumer, Delivery, KeyValueStore, MessageQueue } from '../stores/types.js';
import type { Chunks, DeadLetter, Filter, FilterObserver } from './engine.js';
import { type Envelope, Tracker } from './message.js';
import { type ChainPosition, type Decoded, decodeDelivery, encodeMessage, pipeSink } from './pipe.js';
import { runPipeline, type Sink, SOURCE, type Source } from './pipeline.js';
import { admit, type Cursor, CursorStore, inputId } from './sequencer.js';

/** Options of one broker-backed stage. */
export interface StageOptions {
  /** The stage's name: its consumer group, its metrics label, its cursors' prefix. */
  name: string;
  /** The MessageQueue its pipes use. */
  queue: MessageQueue;
  /** A pipe topic to consume, or a Source (file, HTTP, schedule) for a first stage. */
  input: { topic: string } | Source<unknown>;
  filters: Filter<unknown, unknown>[];
  /** A pipe topic to publish to (the next stage's input), or any sink. */
  output: { topic: string } | Sink<unknown>;
  /**
   * Where the stage keeps its per-key cursors. With it, order per key holds across crashes and
   * redeliveries of finished messages are acked without running again; without it, order per
   * key holds inside one process only.
   */
  state?: KeyValueStore;
  /** Messages processed at once by this instance (default 64); each filter may set its own. */
  concurrency?: number;
  /** Deliveries of one message before it goes to the dead-letter topic (default 5). */
  maxDeliveries?: number;
  /** Redelivery of a message a crashed instance held (default 30 s). */
  ackWaitMs?: number;
  /** Pauses between attempts of a failing message (default 200 ms, 1 s, 5 s). */
  backoffMs?: number[];
  /** Dead letters go here (default `<input topic>.dlq`, or `<name>.dlq` for a source). */
  deadLetterTopic?: string;
  signal?: AbortSignal;
  /** Metrics hooks. */
  observe?: StageObserver;
  /** Reports errors the stage survives (a broker outage). */
  onError?: (err: unknown) => void;
}

export interface StageObserver extends FilterObserver {
  received(n: number): void;
  wrote(n: number): void;
  deadLettered(): void;
  redelivered(): void;
  lag(seconds: number): void;
  inFlight(n: number): void;
}

/** A running stage. */
export interface Stage {
  readonly name: string;
  /** Resolves when the stage stopped (after stop(), or the input was exhausted); rejects on a fatal error. */
  readonly done: Promise<void>;
  /** Stops taking messages, finishes those in flight within drainMs (acking what is done), then resolves. */
  stop(drainMs?: number): Promise<void>;
}

/** The default dead-letter topic of a stage. */
export function deadLetterTopicOf(o: Pick<StageOptions, 'input' | 'name' | 'deadLetterTopic'>): string {
  if (o.deadLetterTopic) return o.deadLetterTopic;
  return 'topic' in o.input ? `${o.input.topic}.dlq` : `${o.name}.dlq`;
}

/**
 * Runs one stage: consumes its input pipe in a consumer group named after the stage (several
 * instances share the work), runs the filters, publishes to the output, and acks an input only
 * once everything it produced is durably on the next pipe or in the sink (at-least-once).
 * A message that fails maxDeliveries times goes to the dead-letter topic with the error and the
 * filter's name; retries happen in place so the key's later messages wait behind it, in order.
 */
export async function runStage(o: StageOptions): Promise<Stage> {
  const maxDeliveries = o.maxDeliveries ?? 5;
  if (!Number.isInteger(maxDeliveries) || maxDeliveries < 1) {
    throw new TrellisError(
      'TRELLIS_E_PIPELINE_OPTIONS_INVALID',
      `stage ${o.name}: maxDeliveries must be an integer >= 1`,
    );
  }
  const concurrency = o.concurrency ?? 64;
  const ackWaitMs = o.ackWaitMs ?? 30_000;
  const abort = new AbortController();
  o.signal?.addEventListener('abort', () => abort.abort(), { once: true });
  const dlqTopic = deadLetterTopicOf(o);
  const cursors = o.state ? new CursorStore(o.state, `pipeline/${o.name}/cursor/`) : undefined;
  const observe = o.observe;

  // Chain bookkeeping per key: what was admitted (ahead of the durable cursor) and what the
  // next output's prev is. Entries are dropped when a key goes idle, so memory follows the
  // keys in flight, not every key ever seen.
  interface KeyState {
    admitted: Cursor;
    emitted: string;
    /** The next output's prev as of the last committed input (what its cursor records). */
    committedEmitted: string;
    inFlight: number;
    commits: Promise<void>;
    waiting: Array<() => void>;
    /** Inputs running here by position; each resolves to whether it got done (false: handed back). */
    running: Map<string, Promise<boolean>>;
  }
  const keys = new Map<string, KeyState>();

  // The handler hands envelopes to the pipeline through this channel; the consumer's
  // concurrency bounds it, since each handler waits until its message is done.
  let buffered: Envelope<unknown>[] = [];
  let wakeReader: (() => void) | undefined;
  const push = (env: Envelope<unknown>) => {
    buffered.push(env);
    const w = wakeReader;
    wakeReader = undefined;
    w?.();
  };
  let inFlight = 0;
  // Inputs handed to the pipeline and not yet done: failed (nacked) if the pipeline stops.
  const pending = new Set<Tracker>();
  let failed: unknown;

  const dlqSink: Sink<DeadLetter> = {
    name: `pipe:${dlqTopic}`,
    async write(messages) {
      await Promise.all(
        messages.map((m) => {
          const record = m.value;
          const { payload, options } = encodeMessage({
            value: record.message.value,
            id: record.message.id,
            headers: {
              ...record.message.headers,
              'trellis-dead-letter-reason': record.error.message.slice(0, 1000),
              'trellis-dead-letter-filter': record.filter,
              'trellis-dead-letter-stage': o.name,
              'trellis-deliveries': String(record.attempts),
              ...(record.error.code ? { 'trellis-dead-letter-code': record.error.code } : {}),
            },
            ...(record.message.key === undefined ? {} : { key: record.message.key }),
          });
          observe?.deadLettered();
          return o.queue.publish(dlqTopic, payload, { ...options, id: `${options.id}:dlq:${o.name}` });
        }),
      );
    },
  };

  // Stamps outputs with their chain position: seq = the input's position, prev = the last
  // input of the key that produced output. Only with a state store: the chain must be durable.
  // A chunk that failed is written again with the same envelopes: they keep the position they
  // got the first time, or a retry would look like the next part to the following stage.
  const stamped = new WeakMap<Envelope<unknown>, ChainPosition | undefined>();
  const admittedIn = new WeakMap<StageTracker, KeyState>();
  const stamp = (env: Envelope<unknown>): ChainPosition | undefined => {
    if (stamped.has(env)) return stamped.get(env);
    const pos = position(env);
    stamped.set(env, pos);
    return pos;
  };
  const position = (env: Envelope<unknown>): ChainPosition | undefined => {
    if (!cursors || env.key === undefined) return undefined;
    const tracker = env.trackers.at(-1) as StageTracker | undefined;
    if (!tracker?.position || tracker.key !== env.key) return undefined;
    // The key state the input was admitted in, not whatever the map holds now.
    const ks = admittedIn.get(tracker);
    if (!ks) return undefined;
    const seq = inputId(tracker.position);
    if (tracker.firstOutputOf !== seq) {
      tracker.firstOutputOf = seq;
      tracker.partsOut = 0;
      tracker.prevOut = ks.emitted;
      ks.emitted = seq;
    }
    return { seq, part: tracker.partsOut++, prev: tracker.prevOut ?? '' };
  };

  // Without a state store nothing is stamped: no WeakMap entry per message.
  const sink: Sink<unknown> =
    'topic' in o.output ? pipeSink(o.queue, o.output.topic, cursors ? stamp : undefined) : o.output;

  const keyState = async (key: string): Promise<KeyState> => {
    let ks = keys.get(key);
    if (ks) return ks;
    const durable = await cursors!.read(key);
    ks = keys.get(key);
    if (ks) return ks;
    ks = {
      admitted: durable ?? { seq: '', part: -1, emitted: '' },
      emitted: durable?.emitted ?? '',
      committedEmitted: durable?.emitted ?? '',
      inFlight: 0,
      commits: Promise.resolve(),
      waiting: [],
      running: new Map(),
    };
    keys.set(key, ks);
    return ks;
  };

  const holdLimitMs = Math.max(100, ackWaitMs * 0.8);

  /** Waits until `pos` is next for its key (its key state, counted in flight); 'done' when it was finished already; 'timeout' to hand it back. */
  const gate = async (
    key: string,
    pos: ChainPosition,
  ): Promise<
    | { next: KeyState; finished: (ok: boolean) => void }
    | { settleWith: Promise<boolean> }
    | 'done'
    | 'timeout'
  > => {
    const deadline = Date.now() + holdLimitMs;
    for (;;) {
      const ks = await keyState(key);
      const c = ks.admitted.part < 0 ? undefined : ks.admitted;
      const verdict = admit(c, pos);
      if (verdict === 'next') {
        ks.admitted = { seq: pos.seq, part: pos.part, emitted: '' };
        // A successor already waiting here can go right after this one.
        if (ks.waiting.length > 0) queueMicrotask(() => wakeKey(ks));
        // Counted in flight and running at once, in this turn: nothing may drop this state, and
        // a copy arriving before the handler resumes must settle with this one.
        ks.inFlight++;
        let finished!: (ok: boolean) => void;
        ks.running.set(inputId(pos), new Promise<boolean>((r) => (finished = r)));
        return { next: ks, finished };
      }
      if (verdict === 'done') {
        // Still running here (a redelivery of an in-flight message): settle with it.
        // Wrapped: an async function returning the promise itself would wait for it and
        // resolve to nothing, and the copy would then run a second time as if admitted.
        const running = ks.running.get(inputId(pos));
        return running ? { settleWith: running } : 'done';
      }
      if (Date.now() > deadline || abort.signal.aborted) return 'timeout';
      // The predecessor is out: wait for this process to admit the next message of the key,
      // or look at the durable cursor again (another instance may have moved it).
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 250);
        ks.waiting.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
      // Only this state, and only when nothing of the key runs: the map may hold a newer
      // state by now (another waiter dropped this one), and dropping that one while its inputs
      // run would rebuild the key from the durable cursor, behind what they already published.
      if (ks.inFlight === 0 && keys.get(key) === ks) {
        keys.delete(key);
        cursors!.forget(key);
      }
    }
  };

  const wakeKey = (ks: KeyState) => {
    const w = ks.waiting;
    ks.waiting = [];
    for (const f of w) f();
  };

  /** The envelope of a delivery, tracked by `tracker`. */
  const envelopeOf = (m: Decoded, d: Delivery, tracker: StageTracker): Envelope<unknown> =>
    ({
      value: m.value,
      key: m.key,
      id: m.id,
      headers: m.headers,
      trackers: [tracker],
      attempt: d.deliveryCount,
    }) as Envelope<unknown>;

  const handle = (d: Delivery): Promise<void> => {
    const m = decodeDelivery(d);
    observe?.received(1);
    if (d.deliveryCount > 1) observe?.redelivered();
    if (m.sentAt) observe?.lag(Math.max(0, Date.now() - m.sentAt) / 1000);
    if (cursors !== undefined && m.key !== undefined && m.chain !== undefined) return handleOrdered(d, m);
    // Unordered (no state store, or a message without a key or chain): no gate and no cursor,
    // so no async frame either: the handler's promise is the one its tracker settles.
    if (failed) return Promise.reject(failed);
    inFlight++;
    observe?.inFlight(inFlight);
    return new Promise<void>((resolve, reject) => {
      const tracker = new StageTracker(
        () => {
          pending.delete(tracker);
          inFlight--;
          observe?.inFlight(inFlight);
          resolve();
        },
        (err) => {
          pending.delete(tracker);
          inFlight--;
          observe?.inFlight(inFlight);
          reject(err);
        },
      );
      pending.add(tracker);
      push(envelopeOf(m, d, tracker));
    });
  };

  /** A message with a key and a chain position, with a state store: gated, then its cursor written. */
  const handleOrdered = async (d: Delivery, m: Decoded): Promise<void> => {
    const verdict = await gate(m.key!, m.chain!);
    if (verdict === 'done') return;
    if (verdict === 'timeout') {
      await d.nack({ delayMs: 250 });
      return;
    }
    if ('settleWith' in verdict) {
      // The copy is the same broker message: ack it only if the original got done.
      if (await verdict.settleWith) return;
      throw new TrellisError('TRELLIS_E_PIPELINE_ABORTED', `stage ${o.name} stopped`);
    }
    const ks: KeyState | undefined = verdict.next;
    const settleWith: ((ok: boolean) => void) | undefined = verdict.finished;
    inFlight++;
    observe?.inFlight(inFlight);
    let handed: StageTracker | undefined;
    let ok = false;
    try {
      await new Promise<void>((resolve, reject) => {
        if (failed) return reject(failed);
        const tracker = new StageTracker(
          () => {
            pending.delete(tracker);
            resolve();
          },
          (err) => {
            pending.delete(tracker);
            reject(err);
          },
        );
        pending.add(tracker);
        handed = tracker;
        tracker.position = m.chain!;
        tracker.key = m.key!;
        admittedIn.set(tracker, ks);
        push(envelopeOf(m, d, tracker));
      });
      if (ks) {
        const pos = m.chain!;
        const k = ks;
        const tracker = handed;
        // Cursors of one key are written in order; the ack waits for the write. The cursor
        // records the chain as of this input, not ks.emitted: a successor may already have
        // published (and moved ks.emitted) while this one was finishing, and if the process then
        // dies before the successor's own commit, its redelivery must get the same prev again.
        const commit = k.commits.then(() => {
          const id = inputId(pos);
          if (tracker?.firstOutputOf === id) k.committedEmitted = id;
          return cursors!.advance(m.key!, { seq: pos.seq, part: pos.part, emitted: k.committedEmitted });
        });
        ks.commits = commit.catch(() => {});
        await commit;
      }
      ok = true;
    } finally {
      inFlight--;
      observe?.inFlight(inFlight);
      if (ks) {
        ks.inFlight--;
        ks.running.delete(inputId(m.chain!));
        settleWith?.(ok);
        wakeKey(ks);
        if (ks.inFlight === 0 && ks.waiting.length === 0 && keys.get(m.key!) === ks) keys.delete(m.key!);
      }
    }
  };

  // Wakes holds when a key moves forward in this process.
  const admittedWake = () => {
    for (const ks of keys.values()) if (ks.waiting.length > 0) wakeKey(ks);
  };

  const source: Source<unknown> =
    'topic' in o.input
      ? {
          [SOURCE]: true,
          name: o.input.topic,
          open: (signal) => readChannel(signal),
        }
      : counted(o.input);

  // A file, HTTP or schedule input has no queue handler to count what came in.
  function counted(input: Source<unknown>): Source<unknown> {
    return {
      [SOURCE]: true,
      name: input.name,
      async *open(signal) {
        for await (const chunk of input.open(signal)) {
          observe?.received(chunk.length);
          yield chunk;
        }
      },
    };
  }

  async function* readChannel(signal: AbortSignal): Chunks<unknown> {
    const onAbort = () => wakeReader?.();
    signal.addEventListener('abort', onAbort, { once: true });
    while (!signal.aborted) {
      if (buffered.length > 0) {
        const chunk = buffered;
        buffered = [];
        yield chunk;
        admittedWake();
        continue;
      }
      await new Promise<void>((resolve) => {
        wakeReader = resolve;
      });
    }
    signal.removeEventListener('abort', onAbort);
  }

  let consumer: Consumer | undefined;
  if ('topic' in o.input) {
    consumer = await o.queue.consume(o.input.topic, o.name, handle, {
      concurrency: Math.max(concurrency * 2, 16),
      // Trellis counts attempts in place (see attempt()); the queue's own limit is only the
      // backstop for a message that kills the process every time. It is generous because a
      // message handed back while it waits for its predecessor (see gate) is a delivery too,
      // and dead-lettering a waiting message would break its key's chain.
      maxDeliver: maxDeliveries * 40,
      ackWaitMs,
      backoffMs: [100, 1000],
      deadLetterTopic: dlqTopic,
    });
  }

  const run = runPipeline(source, o.filters, sink, {
    signal: abort.signal,
    deadLetter: dlqSink,
    retry: { attempts: maxDeliveries, backoffMs: o.backoffMs ?? [200, 1000, 5000] },
    sinkRetry: { attempts: maxDeliveries, backoffMs: o.backoffMs ?? [200, 1000, 5000] },
    ...(observe ? { observe } : {}),
  });
  const done = run.then(
    () => {},
    (err: unknown) => {
      if (abort.signal.aborted && isAbort(err)) return;
      throw err;
    },
  );
  const failPending = (err: unknown) => {
    failed ??= err;
    for (const t of [...pending]) t.fail(err);
  };
  done.then(
    () => failPending(new TrellisError('TRELLIS_E_PIPELINE_ABORTED', `stage ${o.name} stopped`)),
    (err: unknown) => {
      failPending(err);
      o.onError?.(err);
    },
  );
  let stopping: Promise<void> | undefined;
  return {
    name: o.name,
    done,
    stop(drainMs = 10_000) {
      stopping ??= (async () => {
        // Stop taking messages, let what is in flight finish (and be acked) for up to drainMs,
        // then cut the rest short: it is nacked and comes back to another instance.
        const stopped = consumer?.stop() ?? Promise.resolve();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([stopped, new Promise((r) => (timer = setTimeout(r, drainMs)))]);
        clearTimeout(timer);
        abort.abort();
        await done.catch(() => {});
        await stopped;
      })();
      return stopping;
    },
  };
}

function isAbort(err: unknown): boolean {
  return (err as { code?: string })?.code === 'TRELLIS_E_PIPELINE_ABORTED';
}

/** A tracker that also knows its input's chain position and what the stage published for it. */
class StageTracker extends Tracker {
  position?: ChainPosition;
  key?: string;
  firstOutputOf?: string;
  partsOut = 0;
  prevOut?: string;
}
