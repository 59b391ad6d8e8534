import { TrellisError } from '../core/errors.js';
import type { Delivery, MessageQueue } from '../stores/types.js';
import type { Envelope, Message } from './message.js';
import type { Sink } from './pipeline.js';

/**
 * How a message travels on a pipe (a MessageQueue topic between two stages): the value as JSON
 * in the payload, the ordering key as the queue's key, and these headers.
 */
export const HEADERS = {
  /** The idempotency key: the same on every copy of a message, so sinks can dedupe. */
  id: 'trellis-id',
  /** Position in its key's chain: the sending stage's input position (see Sequencer). */
  seq: 'trellis-seq',
  /** Index among the messages one input produced (flatMap). */
  part: 'trellis-part',
  /** The seq of the previous message of this key on this pipe ('' starts a chain). */
  prev: 'trellis-prev',
  /** When the message entered the pipe (epoch ms), for the lag metric. */
  sentAt: 'trellis-sent-at',
} as const;

/** Chain facts a stage attaches to what it publishes. */
export interface ChainPosition {
  seq: string;
  part: number;
  prev: string;
}

/** A delivery as a stage reads it: the message plus its chain position and when it was sent. */
export type Decoded = Message<unknown> & { chain?: ChainPosition; sentAt?: number };

/** A delivery as a message: payload parsed, headers of the pipe taken out. */
export function decodeDelivery(d: Delivery): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(d.payload);
  } catch {
    // A producer outside Trellis may send text: hand it over as it is.
    value = d.payload;
  }
  // One pass over the headers, no intermediate arrays or objects (this runs per message).
  const headers: Record<string, string> = {};
  const all = d.headers;
  for (const k in all) if (!k.startsWith('trellis-')) headers[k] = all[k]!;
  const m: Decoded = { value, id: all[HEADERS.id] ?? d.id, headers };
  if (d.key !== undefined) m.key = d.key;
  const seq = all[HEADERS.seq];
  if (seq !== undefined)
    m.chain = { seq, part: Number(all[HEADERS.part] ?? 0), prev: all[HEADERS.prev] ?? '' };
  const sentAt = Number(all[HEADERS.sentAt]);
  if (Number.isFinite(sentAt)) m.sentAt = sentAt;
  return m;
}

/** Publish arguments for one message on a pipe. */
export function encodeMessage(
  m: Message<unknown>,
  chain?: ChainPosition,
): {
  payload: string;
  options: { id: string; key?: string; headers: Record<string, string> };
} {
  const payload = JSON.stringify(m.value ?? null);
  if (payload === undefined) {
    throw new TrellisError(
      'TRELLIS_E_PIPELINE_MESSAGE_INVALID',
      `message ${m.id}: its value cannot be written as JSON (a function or a symbol?)`,
    );
  }
  const headers: Record<string, string> = {};
  for (const k in m.headers) headers[k] = m.headers[k]!;
  headers[HEADERS.id] = m.id;
  headers[HEADERS.sentAt] = String(Date.now());
  if (chain) {
    headers[HEADERS.seq] = chain.seq;
    headers[HEADERS.part] = String(chain.part);
    headers[HEADERS.prev] = chain.prev;
  }
  const options: { id: string; key?: string; headers: Record<string, string> } = { id: m.id, headers };
  if (m.key !== undefined) options.key = m.key;
  return { payload, options };
}

/** Gives each outgoing message its chain position (a stage's Sequencer), or none. */
export type Stamp = (env: Envelope<unknown>) => ChainPosition | undefined;

/**
 * Chunks a pipe sink publishes before the first of them is confirmed. A stage hands the sink
 * small chunks (what arrived in one turn), so one chunk at a time meant one broker round trip
 * per few messages; with a window the publishes stream and the confirmations come back together.
 */
export const PIPE_WRITES_IN_FLIGHT = 64;

/**
 * A sink that publishes to a pipe. A chunk's publishes go out together (one connection keeps
 * their order), up to PIPE_WRITES_IN_FLIGHT chunks are out at once, and a chunk counts as
 * written (its inputs are acked) once the queue confirmed every one of its messages.
 * The queue's dedupe on the message id drops the copy a stage republishes after a crash.
 */
export function pipeSink(
  queue: MessageQueue,
  topic: string,
  stamp?: Stamp,
  writesInFlight = PIPE_WRITES_IN_FLIGHT,
): Sink<unknown> {
  return {
    name: `pipe:${topic}`,
    writesInFlight,
    async write(messages) {
      await Promise.all(
        messages.map((env) => {
          const { payload, options } = encodeMessage(env, stamp?.(env));
          return queue.publish(topic, payload, options);
        }),
      );
    },
  };
}

/**
 * Publishes messages into a pipe with chain positions, so the first stage keeps their per-key
 * order across its own crashes. Positions grow with time (a hybrid clock), so a producer that
 * restarts starts new chains that the stage accepts without waiting.
 */
export function pipeProducer(queue: MessageQueue, topic: string) {
  const last = new Map<string, string>();
  let clock = 0;
  return {
    /** Publishes one message; resolves once the queue has it durably. */
    async send(value: unknown, o: { key?: string; id?: string; headers?: Record<string, string> } = {}) {
      const id = o.id ?? `${topic}:${Date.now().toString(36)}:${(clock++).toString(36)}`;
      let chain: ChainPosition | undefined;
      if (o.key !== undefined) {
        clock = Math.max(clock + 1, Date.now() * 1000);
        chain = { seq: String(clock), part: 0, prev: last.get(o.key) ?? '' };
        last.set(o.key, chain.seq);
      }
      const { payload, options } = encodeMessage(
        { value, id, headers: o.headers ?? {}, ...(o.key === undefined ? {} : { key: o.key }) },
        chain,
      );
      return queue.publish(topic, payload, options);
    },
  };
}
