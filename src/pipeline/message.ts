/**
 * What travels through a pipeline: the value plus the facts that must travel with it (its
 * ordering key, its idempotency key, headers), and a Tracker that knows when every message
 * derived from one input has been handled, so a broker-backed stage can ack that input.
 */

/** One message between filters. */
export interface Message<T = unknown> {
  value: T;
  /** Ordering key: messages with the same key are processed in order, different keys in parallel. */
  key?: string;
  /** Idempotency key: stays the same through every filter and every redelivery, so sinks can dedupe. */
  id: string;
  headers: Record<string, string>;
}

/**
 * Counts the live descendants of one input. A filter that drops a message releases it, one that
 * turns one message into n adds n - 1, a sink releases what it wrote. When the count reaches
 * zero the input is done (a stage then acks it); fail() marks it failed instead.
 */
export class Tracker {
  private pending = 1;
  private finished = false;
  /** Messages of this input a sink has written. */
  written = 0;
  constructor(
    private readonly onDone: () => void = noop,
    private readonly onFail: (err: unknown) => void = noop,
  ) {}
  /** n more messages derive from this input (flatMap). */
  fork(n: number): void {
    this.pending += n;
  }
  release(): void {
    if (this.finished) return;
    if (--this.pending === 0) {
      this.finished = true;
      this.onDone();
    }
  }
  fail(err: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.onFail(err);
  }
  get done(): boolean {
    return this.finished;
  }
}

const noop = () => {};

/** A message inside the engine: the user-visible part plus the trackers of the inputs it came from. */
export interface Envelope<T = unknown> extends Message<T> {
  /** One tracker per input this message carries (several after batch or window). */
  trackers: Tracker[];
  /** Attempts already used by earlier deliveries of this input (a broker redelivery), plus one. */
  attempt?: number;
}

/** Releases every tracker of an envelope (the message was written, or dropped on purpose). */
export function release(env: Envelope): void {
  for (const t of env.trackers) t.release();
}

/**
 * The trackers of a message nobody waits for (a plain value from an in-process iterable): no
 * Tracker per message when nothing acks it. Frozen, so a filter that merges trackers must copy.
 */
export const NO_TRACKERS: Tracker[] = Object.freeze([]) as unknown as Tracker[];

let counter = 0;
const prefix = `${process.pid.toString(36)}-${Date.now().toString(36)}`;

/** A process-unique idempotency key for a message that came with none. */
export function newMessageId(): string {
  return `${prefix}-${(counter++).toString(36)}`;
}

/** Wraps a plain value (or a Message) from a source into an envelope. */
export function toEnvelope<T>(item: T | Message<T>, trackers: Tracker[], isMessage: boolean): Envelope<T> {
  // One object shape for every envelope keeps the filters' property reads monomorphic.
  if (isMessage) {
    const m = item as Message<T>;
    return {
      value: m.value,
      key: m.key,
      id: m.id ?? newMessageId(),
      headers: m.headers ?? {},
      trackers,
      attempt: undefined,
    } as Envelope<T>;
  }
  return {
    value: item as T,
    key: undefined,
    id: newMessageId(),
    headers: {},
    trackers,
    attempt: undefined,
  } as Envelope<T>;
}

/** The same message with a new value (map, enrich). */
export function withValue<T, O>(env: Envelope<T>, value: O): Envelope<O> {
  // One object shape for every envelope keeps the filters' property reads monomorphic.
  return {
    value,
    key: env.key,
    id: env.id,
    headers: env.headers,
    trackers: env.trackers,
    attempt: env.attempt,
  } as Envelope<O>;
}

/** The user-visible part of an envelope. */
export function messageOf<T>(env: Envelope<T>): Message<T> {
  return {
    value: env.value,
    ...(env.key === undefined ? {} : { key: env.key }),
    id: env.id,
    headers: env.headers,
  };
}
