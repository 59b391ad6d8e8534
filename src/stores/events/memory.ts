import { TrellisError } from '../../core/errors.js';
import type { AppendResult, NewEvent, RecordedEvent, StoreHealth, SubscriptionItem } from '../types.js';
import { checkExpectedVersion, features, Notifier, pollSubscription, prepareEvents } from './common.js';
import type { AppendOptions, AppendTransaction, TrellisEventStore } from './types.js';

const noSql: AppendTransaction = {
  backend: 'memory',
  sql() {
    return Promise.reject(
      new TrellisError(
        'TRELLIS_E_STORE_UNSUPPORTED',
        'the memory event store has no SQL database: keep memory read models in your own objects, or use sqlite:/postgres://',
      ),
    );
  },
};

/** EventStore in process memory: for tests and single-process tools; gone on exit. */
export class MemoryEventStore implements TrellisEventStore {
  readonly backend = 'memory';
  readonly features = features<'durable' | 'multiProcess' | 'inlineProjections'>(['inlineProjections'], {
    durable: 'memory is lost when the process exits',
    multiProcess: 'memory is private to one process',
  });
  private readonly all: RecordedEvent[] = [];
  private readonly streams = new Map<string, RecordedEvent[]>();
  private readonly notifier = new Notifier();
  // Appends run one at a time so an async inline handler sees a stable stream.
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  append(streamId: string, events: NewEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    const run = this.tail.then(() => this.appendNow(streamId, events, options));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async appendNow(
    streamId: string,
    events: NewEvent[],
    options: AppendOptions,
  ): Promise<AppendResult> {
    this.ensureOpen();
    const prepared = prepareEvents(streamId, events);
    const stream = this.streams.get(streamId) ?? [];
    checkExpectedVersion(streamId, options.expectedVersion, stream.length);
    const base = this.all.length;
    const recordedAt = new Date();
    const recorded: RecordedEvent[] = prepared.map((e, i) => ({
      id: e.id,
      streamId,
      type: e.type,
      data: structuredClone(e.data),
      metadata: structuredClone(e.metadata),
      version: stream.length + i + 1,
      position: base + i + 1,
      recordedAt,
    }));
    // Inline handlers run before the events become visible; a throw leaves the store untouched.
    for (const handler of options.inline ?? []) await handler(recorded, noSql);
    this.all.push(...recorded);
    stream.push(...recorded);
    this.streams.set(streamId, stream);
    this.notifier.notify();
    return { nextVersion: stream.length, position: recorded.at(-1)?.position ?? base };
  }

  async readStream(streamId: string, options: { fromVersion?: number; limit?: number } = {}) {
    this.ensureOpen();
    const from = Math.max(1, options.fromVersion ?? 1);
    const stream = this.streams.get(streamId) ?? [];
    return stream.slice(from - 1, options.limit === undefined ? undefined : from - 1 + options.limit);
  }

  async readAll(options: { from?: number; limit?: number } = {}) {
    this.ensureOpen();
    const from = Math.max(0, options.from ?? 0);
    return this.all.slice(from, options.limit === undefined ? undefined : from + options.limit);
  }

  subscribe(options: { from?: number; signal?: AbortSignal } = {}): AsyncIterable<SubscriptionItem> {
    return pollSubscription(
      {
        readAll: (o) => this.readAll(o),
        waitForChange: (signal) => this.notifier.wait(60_000, signal),
      },
      options,
    );
  }

  async transaction<T>(fn: (tx: AppendTransaction) => Promise<T>): Promise<T> {
    return fn(noSql);
  }

  async headPosition(): Promise<number> {
    return this.all.length;
  }

  async health(): Promise<StoreHealth> {
    return this.closed ? { ok: false, backend: 'memory', detail: 'closed' } : { ok: true, backend: 'memory' };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.notifier.notify();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private ensureOpen(): void {
    if (this.closed) {
      throw new TrellisError('TRELLIS_E_STORE_CLOSED', 'this event store was closed: open a new one');
    }
  }
}
