import type {
  ConsumeOptions,
  Consumer,
  Delivery,
  FeatureList,
  MessageQueue,
  PublishOptions,
  QueueFeature,
  StoreHealth,
} from '../types.js';
import { type PullSource, startConsumer } from './consumer.js';
import {
  checkGroup,
  checkOpen,
  checkPayload,
  checkTopic,
  type ResolvedConsumeOptions,
  type ResolvedQueueOptions,
  resolveConsumeOptions,
} from './options.js';

/**
 * What every backend shares: input checks, the consume loop over the backend's PullSource,
 * health, and a close() that first stops every consumer (letting running handlers finish).
 * A backend supplies how to append, how to pull for a group, how to ping and how to disconnect.
 */
export abstract class BaseMessageQueue implements MessageQueue {
  abstract readonly backend: string;
  abstract readonly features: FeatureList<QueueFeature>;
  protected closed = false;
  private readonly consumers = new Set<Consumer>();

  constructor(protected readonly options: ResolvedQueueOptions) {}

  /** Appends one checked message to the topic (deduplicated by `o.id` inside the window). */
  protected abstract append(
    topic: string,
    payload: string,
    o: PublishOptions,
  ): Promise<{ id: string; duplicate: boolean }>;
  /** Prepares the group on the topic and returns where its consumer pulls from. */
  protected abstract subscribe(topic: string, group: string, o: ResolvedConsumeOptions): Promise<PullSource>;
  /** Throws when the backend cannot serve requests. */
  protected abstract ping(): Promise<void>;
  /** Releases the connection or file, after every consumer has stopped. */
  protected abstract disconnect(): Promise<void>;

  /** The largest payload publish accepts. */
  protected maxPayloadBytes(): number {
    return this.options.maxPayloadBytes;
  }

  publish(
    topic: string,
    payload: string,
    o: PublishOptions = {},
  ): Promise<{ id: string; duplicate: boolean }> {
    try {
      checkOpen(this.closed, `publish to ${topic}`);
      checkTopic(topic);
      checkPayload(topic, payload, this.maxPayloadBytes());
    } catch (err) {
      return Promise.reject(err);
    }
    return this.append(topic, payload, o);
  }

  async consume(
    topic: string,
    group: string,
    handler: (d: Delivery) => Promise<void>,
    options: ConsumeOptions = {},
  ): Promise<Consumer> {
    checkOpen(this.closed, `consume ${topic}`);
    checkTopic(topic);
    checkGroup(group);
    const o = resolveConsumeOptions(topic, options);
    const source = await this.subscribe(topic, group, o);
    const consumer = startConsumer(source, handler, topic, o, this.options.onError, options.signal);
    this.consumers.add(consumer);
    return {
      stop: async () => {
        await consumer.stop();
        this.consumers.delete(consumer);
      },
    };
  }

  async health(): Promise<StoreHealth> {
    try {
      checkOpen(this.closed, 'health');
      await this.ping();
      return { ok: true, backend: this.backend };
    } catch (err) {
      return { ok: false, backend: this.backend, detail: (err as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.consumers].map((c) => c.stop()));
    this.closed = true;
    await this.disconnect();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
