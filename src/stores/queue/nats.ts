import type {
  ConsumerConfig,
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
  MsgHdrs,
  NatsConnection,
  Consumer as NatsConsumer,
} from 'nats';
import { TrellisError } from '../../core/errors.js';
import { TurnBatch } from '../../core/turn-batch.js';
import { redactUrl, unavailable } from '../connection.js';
import type { FeatureList, PublishOptions, QueueFeature } from '../types.js';
import { BaseMessageQueue } from './base.js';
import type { Pulled, PullSource } from './consumer.js';
import {
  checkOpen,
  deadLetterHeaders,
  type ResolvedConsumeOptions,
  type ResolvedQueueOptions,
} from './options.js';

type NatsModule = typeof import('nats');

const FEATURES: FeatureList<QueueFeature> = {
  supports: new Set(['durable', 'multiProcess', 'dedupe', 'delayedNack']),
  lacks: {},
};

const KEY_HEADER = 'Trellis-Key';
const MSG_ID_HEADER = 'Nats-Msg-Id';
const encoder = new TextEncoder();

/** NATS stream names allow no dots: escape every other character so distinct topics never collide. */
function streamName(prefix: string, topic: string): string {
  return `${prefix}_Q_${topic.replace(/[^A-Za-z0-9]/g, (c) => `_${c.charCodeAt(0).toString(16)}`)}`;
}

function userHeaders(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const [k, values] of h) {
    if (k === KEY_HEADER || k.startsWith('Nats-')) continue;
    out[k] = values.join(',');
  }
  return out;
}

/**
 * MessageQueue on NATS JetStream: a stream per topic (limits retention, so every group gets
 * every message), a durable pull consumer per group with explicit ack, `ack_wait`, `nak(delay)`
 * and `term`. Publish dedupe is JetStream's own `Nats-Msg-Id` window (`duplicate_window`).
 *
 * The server's `max_deliver` stays unlimited on purpose: Trellis counts deliveries itself and
 * moves a message to the dead-letter topic before it is settled, so the server never drops
 * a message that has not reached the dead-letter topic.
 */
export class NatsMessageQueue extends BaseMessageQueue {
  readonly backend = 'nats';
  readonly features = FEATURES;
  private connected = true;
  private readonly streams = new Map<string, Promise<string>>();

  private constructor(
    private readonly nats: NatsModule,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly url: string,
    options: ResolvedQueueOptions,
  ) {
    super(options);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') this.connected = false;
        if (s.type === 'reconnect') this.connected = true;
      }
    })();
  }

  /** Connects to `nats://[user:pass@|token@]host:port`; the server must run JetStream (`-js`). */
  static async open(url: string, options: ResolvedQueueOptions): Promise<NatsMessageQueue> {
    const nats = await import('nats');
    let u: URL;
    try {
      u = new URL(url);
    } catch (err) {
      throw new TrellisError('TRELLIS_E_STORE_URL_INVALID', `${redactUrl(url)} is not a valid nats:// URL`, {
        cause: err,
      });
    }
    const auth =
      u.username && u.password
        ? { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) }
        : u.username
          ? { token: decodeURIComponent(u.username) }
          : {};
    let nc: NatsConnection | undefined;
    try {
      nc = await nats.connect({
        servers: `${u.hostname}:${u.port || 4222}`,
        name: 'trellis-queue',
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        ...auth,
      });
      const jsm = await nc.jetstreamManager({ timeout: 5000 });
      return new NatsMessageQueue(nats, nc, nc.jetstream({ timeout: 5000 }), jsm, url, options);
    } catch (err) {
      await nc?.close().catch(() => {});
      throw unavailable('nats', url, err);
    }
  }

  /** Creates the topic's stream on first use (idempotent across processes). */
  private stream(topic: string): Promise<string> {
    let made = this.streams.get(topic);
    if (!made) {
      made = this.ensureStream(topic);
      made.catch(() => this.streams.delete(topic));
      this.streams.set(topic, made);
    }
    return made;
  }

  private async ensureStream(topic: string): Promise<string> {
    const name = streamName(this.options.prefix, topic);
    await this.call(async () => {
      try {
        await this.jsm.streams.info(name);
      } catch (err) {
        if ((err as { api_error?: { err_code?: number } }).api_error?.err_code !== 10059) throw err;
        await this.jsm.streams
          .add({
            name,
            subjects: [this.subject(topic)],
            retention: this.nats.RetentionPolicy.Limits,
            storage: this.nats.StorageType.File,
            duplicate_window: this.nats.nanos(this.options.dedupeWindowMs),
          })
          .catch(async (addErr) => {
            // Another process created it between our info and add: use theirs.
            await this.jsm.streams.info(name).catch(() => {
              throw addErr;
            });
          });
      }
    });
    return name;
  }

  private subject(topic: string): string {
    return `${this.options.prefix}.q.${topic}`;
  }

  protected override maxPayloadBytes(): number {
    return Math.min(this.options.maxPayloadBytes, this.nc.info?.max_payload ?? Number.POSITIVE_INFINITY);
  }

  protected async append(topic: string, payload: string, o: PublishOptions) {
    await this.stream(topic);
    const ack = await this.send(topic, payload, o);
    return { id: o.id ?? String(ack.seq), duplicate: ack.duplicate };
  }

  private send(topic: string, payload: string, o: PublishOptions) {
    let h: MsgHdrs | undefined;
    if (o.key !== undefined || (o.headers && Object.keys(o.headers).length > 0)) {
      h = this.nats.headers();
      for (const [k, v] of Object.entries(o.headers ?? {})) h.set(k, v);
      if (o.key !== undefined) h.set(KEY_HEADER, o.key);
    }
    return this.call(() =>
      this.inTurn(() =>
        this.js.publish(this.subject(topic), encoder.encode(payload), {
          ...(o.id === undefined ? {} : { msgID: o.id }),
          ...(h ? { headers: h } : {}),
        }),
      ),
    );
  }

  // Publishes asked for in one event-loop turn start together in the next one. nats.js writes
  // to the socket once per microtask checkpoint, and a stage asks for its publishes a chunk at a
  // time across many checkpoints (one message each, often): started one by one they cost a
  // socket write each; started together they go in one write and their PubAcks come back
  // together, each still resolving its own publish (at-least-once is unchanged).
  private readonly turn = new TurnBatch<() => void>((starts) => {
    for (const start of starts) start();
  });
  private inTurn<T>(start: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.turn.push(() => {
        try {
          start().then(resolve, reject);
        } catch (err) {
          reject(err);
        }
      });
    });
  }

  protected async subscribe(topic: string, group: string, o: ResolvedConsumeOptions): Promise<PullSource> {
    const stream = await this.stream(topic);
    const config: Partial<ConsumerConfig> = {
      durable_name: group,
      ack_policy: this.nats.AckPolicy.Explicit,
      deliver_policy: this.nats.DeliverPolicy.All,
      ack_wait: this.nats.nanos(o.ackWaitMs),
      max_deliver: -1,
      max_ack_pending: Math.max(1000, o.concurrency * 4),
    };
    const js = await this.call(async () => {
      const existing = await this.jsm.consumers.info(stream, group).catch(() => undefined);
      // ackWait is a property of the group on NATS: the latest consumer's setting wins.
      if (!existing) await this.jsm.consumers.add(stream, config);
      else if (existing.config.ack_wait !== config.ack_wait) {
        await this.jsm.consumers.update(stream, group, { ack_wait: config.ack_wait! });
      }
      return this.js.consumers.get(stream, group);
    });
    return this.source(topic, group, js, o.deadLetterTopic, o.concurrency);
  }

  private source(
    topic: string,
    group: string,
    js: NatsConsumer,
    deadLetterTopic: string,
    concurrency: number,
  ): PullSource {
    const toPulled = (m: JsMsg): Pulled => {
      const headers = userHeaders(m.headers);
      const key = m.headers?.get(KEY_HEADER);
      const id = m.headers?.get(MSG_ID_HEADER) || String(m.seq);
      const deliveryCount = m.info.redeliveryCount;
      return {
        id,
        payload: m.string(),
        ...(key ? { key } : {}),
        headers,
        deliveryCount,
        ack: async () => {
          toAck.push(m);
          if (toAck.length === 1) setImmediate(flushAcks);
        },
        nack: async (delayMs) => m.nak(delayMs),
        deadLetter: async (reason) => {
          await this.stream(deadLetterTopic);
          await this.send(deadLetterTopic, m.string(), {
            ...(key ? { key } : {}),
            headers: deadLetterHeaders(headers, { topic, group, id, deliveries: deliveryCount, reason }),
            // A retried dead-letter publish (we crashed before term) is dropped by the window.
            id: `${m.info.stream}.${m.seq}.${group}`,
          });
          m.term(reason.slice(0, 200));
        },
      };
    };
    // Acks are fire-and-forget on NATS; nats.js flushes its socket on every microtask turn, so
    // gathering a turn's acks and sending them together saves a write per message.
    let toAck: JsMsg[] = [];
    const flushAcks = () => {
      const batch = toAck;
      toAck = [];
      for (const m of batch) m.ack();
    };
    // One long-lived pull consume() per consumer: nats.js keeps up to `concurrency` messages
    // requested ahead and refills before it runs dry, so a batch never waits a round trip.
    // A message it buffered when stop() came is not handled and returns after ackWait.
    let messages: ConsumerMessages | undefined;
    let iterator: AsyncIterator<JsMsg> | undefined;
    let pending: Promise<IteratorResult<JsMsg>> | undefined;
    return {
      pull: async (max, waitMs, deliver, signal) => {
        checkOpen(this.closed, `consume ${topic}`);
        if (!messages || !iterator) {
          // A short pull expiry (heartbeats at half of it) notices a connection that came back within
          // seconds; with the 30 s default a consumer sat idle that long after a reconnect.
          messages = await this.call(() =>
            js.consume({ max_messages: Math.max(concurrency, 1), expires: 5000 }),
          );
          iterator = messages[Symbol.asyncIterator]();
        }
        let timer: NodeJS.Timeout | undefined;
        let onAbort: (() => void) | undefined;
        const over = new Promise<undefined>((resolve) => {
          onAbort = () => resolve(undefined);
          timer = setTimeout(onAbort, waitMs);
          signal.addEventListener('abort', onAbort, { once: true });
        });
        try {
          for (let n = 0; n < max; n++) {
            pending ??= iterator.next();
            const next = await Promise.race([pending, over]);
            // Time is up (the unanswered next() is kept for the following pull) or stop() came.
            if (next === undefined) return;
            pending = undefined;
            if (next.done) {
              messages = undefined;
              return;
            }
            deliver(toPulled(next.value));
          }
        } catch (err) {
          messages = undefined;
          pending = undefined;
          throw this.translate(err);
        } finally {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort!);
        }
      },
      close: async () => {
        flushAcks();
        // stop(), not close(): close() waits for the iterator to be read to its end.
        messages?.stop();
      },
    };
  }

  private async call<T>(what: () => Promise<T>): Promise<T> {
    if (!this.connected) throw unavailable('nats', this.url, new Error('disconnected from the server'));
    try {
      return await what();
    } catch (err) {
      throw this.translate(err);
    }
  }

  /** JetStream API refusals become TRELLIS_E_QUEUE_REJECTED; the rest means the server is unreachable. */
  private translate(err: unknown): TrellisError {
    if (err instanceof TrellisError) return err;
    const api = (err as { api_error?: { description?: string } }).api_error;
    if (api) {
      return new TrellisError(
        'TRELLIS_E_QUEUE_REJECTED',
        `${redactUrl(this.url)}: JetStream refused: ${api.description ?? (err as Error).message} (names collide with other streams? choose another ?prefix=)`,
        { cause: err },
      );
    }
    return unavailable('nats', this.url, err);
  }

  protected async ping(): Promise<void> {
    await this.call(() => this.jsm.getAccountInfo());
  }

  protected async disconnect(): Promise<void> {
    await this.nc.close();
  }
}
