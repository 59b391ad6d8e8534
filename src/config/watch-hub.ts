import { TrellisError } from '../core/errors.js';
import type { ConfigApi, ConfigChange } from './api.js';

/** A change with its SSE payload, serialised once for every subscriber. */
export interface HubChange {
  change: ConfigChange;
  data: string;
}

interface Subscriber {
  prefix: string;
  queue: HubChange[];
  wake: (() => void) | undefined;
  error: unknown;
  closed: boolean;
}

interface LabelFeed {
  /** Every change of the label with revision > `complete` is in `buffer` (Infinity: not known yet). */
  complete: number;
  buffer: HubChange[];
  /** The revision the upstream watch has reached (undefined: no change seen yet, started from now). */
  head: number | undefined;
  subscribers: Set<Subscriber>;
  stop: AbortController;
}

export interface WatchHubOptions {
  /** Changes kept per label for subscribers resuming from a recent revision (default 10,000). */
  bufferSize?: number;
  /** A subscriber further behind than this many changes is cut off and must resume (default 10,000). */
  maxQueue?: number;
}

/**
 * Fans one store watch per label out to every watch stream of the server, so N clients cost
 * one store watch instead of N (each backend's watch polls or holds a connection). A subscriber
 * resuming from a revision the hub still buffers is replayed from memory; one resuming from
 * further back gets its own store watch, which delivers exactly the same sequence.
 */
export class WatchHub {
  readonly #api: ConfigApi;
  readonly #bufferSize: number;
  readonly #maxQueue: number;
  readonly #feeds = new Map<string, LabelFeed>();

  constructor(api: ConfigApi, options: WatchHubOptions = {}) {
    this.#api = api;
    this.#bufferSize = options.bufferSize ?? 10_000;
    this.#maxQueue = options.maxQueue ?? 10_000;
  }

  /** Changes under `prefix` of `label` after `fromRevision` (absent: from now), in order, once each. */
  async *watch(
    label: string,
    prefix: string,
    fromRevision: number | undefined,
    signal: AbortSignal,
  ): AsyncIterable<HubChange> {
    const feed = this.#feed(label, fromRevision);
    if (fromRevision !== undefined && fromRevision < feed.complete) {
      // Older than the buffer: a dedicated store watch (which signals a gap itself if needed).
      for await (const change of this.#api.watch(prefix, { label, fromRevision, signal })) {
        yield { change, data: JSON.stringify(change) };
      }
      return;
    }
    const sub: Subscriber = { prefix, queue: [], wake: undefined, error: undefined, closed: false };
    const after = fromRevision ?? feed.head ?? Number.POSITIVE_INFINITY;
    for (const c of feed.buffer)
      if (c.change.revision > after && c.change.key.startsWith(prefix)) sub.queue.push(c);
    feed.subscribers.add(sub);
    const onAbort = () => {
      sub.closed = true;
      sub.wake?.();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        while (sub.queue.length > 0) yield sub.queue.shift()!;
        if (sub.error) throw sub.error;
        if (sub.closed) return;
        await new Promise<void>((r) => {
          sub.wake = r;
        });
        sub.wake = undefined;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      feed.subscribers.delete(sub);
      if (feed.subscribers.size === 0) this.#retire(label, feed);
    }
  }

  /** Stops every upstream watch. */
  close(): void {
    for (const [label, feed] of this.#feeds) this.#retire(label, feed);
  }

  #feed(label: string, fromRevision: number | undefined): LabelFeed {
    const existing = this.#feeds.get(label);
    if (existing) return existing;
    // Start where the first subscriber needs it; without a revision, from now (then the first
    // change tells which revisions the buffer covers).
    const feed: LabelFeed = {
      complete: fromRevision ?? Number.POSITIVE_INFINITY,
      buffer: [],
      head: fromRevision,
      subscribers: new Set(),
      stop: new AbortController(),
    };
    this.#feeds.set(label, feed);
    void this.#pump(label, feed, fromRevision);
    return feed;
  }

  async #pump(label: string, feed: LabelFeed, fromRevision: number | undefined): Promise<void> {
    try {
      for await (const change of this.#api.watch('', { label, fromRevision, signal: feed.stop.signal })) {
        const item = { change, data: JSON.stringify(change) };
        // Nothing of this label happened between the watch's start and its first change.
        if (feed.complete === Number.POSITIVE_INFINITY) feed.complete = change.revision - 1;
        feed.head = change.revision;
        feed.buffer.push(item);
        if (feed.buffer.length > this.#bufferSize) feed.complete = feed.buffer.shift()!.change.revision;
        for (const sub of feed.subscribers) {
          if (!change.key.startsWith(sub.prefix)) continue;
          if (sub.queue.length >= this.#maxQueue) {
            sub.error = new TrellisError(
              'TRELLIS_E_KV_WATCH_GAP',
              'this watcher fell too far behind and was cut off: list again and watch from its revision',
            );
          } else {
            sub.queue.push(item);
          }
          sub.wake?.();
        }
      }
    } catch (err) {
      if (feed.stop.signal.aborted) return;
      for (const sub of feed.subscribers) {
        sub.error = err;
        sub.wake?.();
      }
    } finally {
      // Whatever ended the upstream watch, the next subscriber starts a fresh one.
      if (this.#feeds.get(label) === feed) this.#feeds.delete(label);
    }
  }

  #retire(label: string, feed: LabelFeed): void {
    feed.stop.abort();
    if (this.#feeds.get(label) === feed) this.#feeds.delete(label);
  }
}
