/**
 * The four building blocks. Each backend implements one of these interfaces and declares what it
 * cannot do in its feature list (with the reason), so conformance suites and callers can ask
 * instead of guessing. Contracts here are the promise every backend keeps (docs/stores.md).
 */

/** What a backend does not support, each with the reason (an empty object: everything). */
export interface FeatureList<F extends string> {
  readonly supports: ReadonlySet<F>;
  readonly lacks: Readonly<Partial<Record<F, string>>>;
}

export interface StoreHealth {
  ok: boolean;
  /** `memory`, `sqlite`, `postgres`, `redis`, `nats`, `etcd`. */
  backend: string;
  /** What is wrong, when not ok (never contains credentials). */
  detail?: string;
}

export interface Store extends AsyncDisposable {
  readonly backend: string;
  health(): Promise<StoreHealth>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// KeyValueStore
// ---------------------------------------------------------------------------------------------

export interface KvEntry {
  key: string;
  value: string;
  /** Store-wide revision of the last change to this key (grows across all keys). */
  revision: number;
  /** Store-wide revision at which the key was created. */
  createRevision: number;
  /** How many times this key has been written since it was created (1 for a new key). */
  version: number;
}

export interface KvPutOptions {
  /** Compare-and-set: write only if the key's revision is still this (0: only if the key is absent). */
  expectedRevision?: number;
}

export interface KvChange {
  type: 'put' | 'delete';
  key: string;
  /** The new value (absent for deletes). */
  value?: string;
  /** Store-wide revision of this change. */
  revision: number;
}

export interface KvWatchOptions {
  /**
   * Deliver every change with revision > fromRevision, exactly once and in order (pass the last
   * revision you saw to resume). Absent: changes after the watch starts. When the store can no
   * longer deliver from there (compaction, a reconnect gap) the iterator throws a TrellisError
   * with code TRELLIS_E_KV_WATCH_GAP: re-read with list() and watch again from its revision.
   */
  fromRevision?: number;
  signal?: AbortSignal;
}

export type KvFeature = 'watch' | 'compareAndSet' | 'durable' | 'multiProcess';

/** Options every store factory (`openKeyValueStore`, `openLeaseStore`, `openEventStore`) takes. */
export interface StoreOpenOptions {
  /**
   * For commands that only read: SQLite opens the file read-only and refuses a missing file with
   * TRELLIS_E_STORE_NOT_FOUND instead of creating folders and an empty database. Server
   * backends (postgres, redis, etcd) connect as usual.
   */
  readOnly?: boolean;
}

export interface KeyValueStore extends Store {
  readonly features: FeatureList<KvFeature>;
  get(key: string): Promise<KvEntry | undefined>;
  /** Throws TRELLIS_E_KV_CONFLICT when expectedRevision does not match. */
  put(key: string, value: string, options?: KvPutOptions): Promise<KvEntry>;
  /** True when a key was deleted. Throws TRELLIS_E_KV_CONFLICT when expectedRevision does not match. */
  delete(key: string, options?: KvPutOptions): Promise<boolean>;
  /** Entries whose key starts with prefix, sorted by key, and the store revision they were read at. */
  list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }>;
  watch(prefix: string, options?: KvWatchOptions): AsyncIterable<KvChange>;
}

// ---------------------------------------------------------------------------------------------
// LeaseStore
// ---------------------------------------------------------------------------------------------

export interface Lease {
  name: string;
  holder: string;
  /** Fencing token: larger than every token issued before for this name, across restarts. */
  token: number;
  /** Epoch milliseconds at which the lease lapses unless renewed. */
  expiresAt: number;
}

export type LeaseFeature = 'durable' | 'multiProcess';

export interface LeaseStore extends Store {
  readonly features: FeatureList<LeaseFeature>;
  /**
   * Takes the lease if it is free or lapsed (a new, larger token), or extends it if `holder`
   * already holds it (same token). Returns undefined while someone else holds it.
   */
  acquire(name: string, holder: string, ttlMs: number): Promise<Lease | undefined>;
  /** Extends a held lease. Throws TRELLIS_E_LEASE_LOST if it lapsed or another holder took it. */
  renew(lease: Pick<Lease, 'name' | 'holder' | 'token'>, ttlMs: number): Promise<Lease>;
  /** Gives the lease up at once so a successor need not wait for it to lapse. */
  release(lease: Pick<Lease, 'name' | 'holder' | 'token'>): Promise<boolean>;
  /** The current unexpired lease, if any. */
  read(name: string): Promise<Lease | undefined>;
}

// ---------------------------------------------------------------------------------------------
// EventStore
// ---------------------------------------------------------------------------------------------

export interface NewEvent {
  type: string;
  data: unknown;
  metadata?: Record<string, unknown>;
  /** Event id; generated (UUID) when absent. */
  id?: string;
}

export interface RecordedEvent {
  id: string;
  streamId: string;
  type: string;
  data: unknown;
  metadata: Record<string, unknown>;
  /** 1 for the first event of a stream. */
  version: number;
  /** Global position: grows with commit order; readers never skip a later-committed lower one. */
  position: number;
  recordedAt: Date;
}

/** 'no_stream' is the same as 0 (the stream has no events). A number: the stream has exactly that many. */
export type ExpectedVersion = 'any' | 'no_stream' | 'exists' | number;

export interface AppendResult {
  /** The stream's version after the append. */
  nextVersion: number;
  /** Global position of the last appended event. */
  position: number;
}

export type EventStoreFeature = 'durable' | 'multiProcess' | 'inlineProjections';

export type SubscriptionItem =
  | { kind: 'event'; event: RecordedEvent }
  | { kind: 'caught-up'; position: number };

/**
 * The transaction an append runs in, handed to inline projections so a read-model change
 * commits (or rolls back) together with the events. `sql` runs one statement with
 * backend-native placeholders ($1 on PostgreSQL, ? on SQLite) and returns its rows.
 */
export interface AppendTransaction {
  readonly backend: 'memory' | 'sqlite' | 'postgres';
  /** The events table of the store (sqlite, postgres): projections name their tables after it. */
  readonly eventsTable?: string;
  sql<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
}

/** Runs inside the append transaction with the events just recorded. Throwing aborts the append. */
export type InlineHandler = (events: RecordedEvent[], tx: AppendTransaction) => Promise<void>;

export interface AppendOptions {
  expectedVersion?: ExpectedVersion;
  /** Inline projections (backends with the 'inlineProjections' feature). */
  inline?: InlineHandler[];
}

/**
 * Ordered streams of events with one global order. `transaction` runs work on the store's own
 * database, for read models that live beside the events (projection checkpoints advance in the
 * same transaction as the read-model change).
 */
export interface EventStore extends Store {
  readonly features: FeatureList<EventStoreFeature>;
  /** The events table (sqlite, postgres; `?table=`): read models and checkpoints beside it are named after it. */
  readonly eventsTable?: string;
  /** Throws TRELLIS_E_EVENT_VERSION_CONFLICT when expectedVersion does not hold. */
  append(streamId: string, events: NewEvent[], options?: AppendOptions): Promise<AppendResult>;
  readStream(streamId: string, options?: { fromVersion?: number; limit?: number }): Promise<RecordedEvent[]>;
  /** Events with position > from (exclusive), in position order. */
  readAll(options?: { from?: number; limit?: number }): Promise<RecordedEvent[]>;
  /** Catch up from `from` (exclusive), yield one 'caught-up' item, then live events. */
  subscribe(options?: { from?: number; signal?: AbortSignal }): AsyncIterable<SubscriptionItem>;
  /** Runs `fn` in one transaction on the store's own database (memory: an in-process SQLite). */
  transaction<T>(fn: (tx: AppendTransaction) => Promise<T>): Promise<T>;
  /** The highest position committed so far (0 when empty). */
  headPosition(): Promise<number>;
}

// ---------------------------------------------------------------------------------------------
// MessageQueue
// ---------------------------------------------------------------------------------------------

export interface PublishOptions {
  /** Partition/ordering key, passed to consumers. */
  key?: string;
  /** Deduplication id: a second publish with the same id inside the window is dropped. */
  id?: string;
  headers?: Record<string, string>;
}

export interface Delivery {
  id: string;
  topic: string;
  payload: string;
  key?: string;
  headers: Record<string, string>;
  /** 1 on the first delivery. */
  deliveryCount: number;
  ack(): Promise<void>;
  /** Redeliver later (after delayMs, default: the consumer's backoff). */
  nack(options?: { delayMs?: number }): Promise<void>;
  /** Never redeliver; goes to the dead-letter topic. */
  term(reason?: string): Promise<void>;
}

export interface ConsumeOptions {
  concurrency?: number;
  /** After this many deliveries the message goes to `<topic>.dlq` (or deadLetterTopic). */
  maxDeliver?: number;
  /** Redeliver if not acked within this long (the consumer died or hung). */
  ackWaitMs?: number;
  /** Delay before redelivery after a nack or a thrown handler, per attempt. */
  backoffMs?: number[];
  deadLetterTopic?: string;
  signal?: AbortSignal;
}

export interface Consumer {
  /** Stop taking new messages, let running handlers finish. */
  stop(): Promise<void>;
}

export type QueueFeature = 'durable' | 'multiProcess' | 'dedupe' | 'delayedNack';

export interface MessageQueue extends Store {
  readonly features: FeatureList<QueueFeature>;
  publish(
    topic: string,
    payload: string,
    options?: PublishOptions,
  ): Promise<{ id: string; duplicate: boolean }>;
  /**
   * A handler that returns acks (unless it already settled the delivery); one that throws nacks
   * with backoff. Every consumer in a group shares the work; each group gets every message.
   */
  consume(
    topic: string,
    group: string,
    handler: (d: Delivery) => Promise<void>,
    options?: ConsumeOptions,
  ): Promise<Consumer>;
}
