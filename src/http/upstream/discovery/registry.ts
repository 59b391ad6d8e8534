import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf } from '../../../core/errors.js';
import type { KeyValueStore } from '../../../stores/types.js';
import { parseRegistryEntry, type RegistryEntry } from './entry.js';
import type { RegistryDiscoveryDef } from './schema.js';
import {
  type DiscoveredUpstream,
  type DiscoveryDeps,
  type DiscoverySource,
  type DiscoveryStatus,
  normalise,
  sameSet,
} from './types.js';

const FIRST_BACKOFF = 100;
const MAX_BACKOFF = 5_000;

interface Seen {
  entry: RegistryEntry;
  /** Local time the key was last written (listed or seen in the watch): no clock skew between hosts. */
  seenAt: number;
}

/**
 * Registry discovery: the instances of a service write `{ url, weight, ttl }` under a prefix of a
 * KeyValueStore and write it again before `ttl` runs out (`registerService`); the pool lists the
 * prefix, then watches it from the listed revision. A key not written again within its ttl (by
 * this process's clock, so hosts need not agree on the time) lapses; a deleted key leaves at once.
 *
 * When the store fails (list or watch), the last known set stays and nothing lapses until the
 * watch is back: an outage of the registry must not empty the service. It lists and watches again
 * with backoff (100 ms doubling to 5 s); a TRELLIS_E_KV_WATCH_GAP is handled the same way.
 */
export class RegistryDiscovery implements DiscoverySource {
  readonly kind = 'registry';
  readonly settled: Promise<void>;
  private markSettled!: () => void;
  private readonly stop = new AbortController();
  private readonly seen = new Map<string, Seen>();
  private onUpdate: ((upstreams: DiscoveredUpstream[]) => void) | undefined;
  private published: DiscoveredUpstream[] = [];
  private watching = false;
  private sweeper: NodeJS.Timeout | undefined;
  private failures = 0;
  private lastUpdate: number | undefined;
  private lastError: string | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly def: RegistryDiscoveryDef,
    /** The store, opened (or its shared connection fetched) again after each failure. */
    private readonly store: () => Promise<KeyValueStore>,
    private readonly deps: DiscoveryDeps & { clock?: () => number },
  ) {
    this.settled = new Promise((resolve) => {
      this.markSettled = resolve;
    });
  }

  start(onUpdate: (upstreams: DiscoveredUpstream[]) => void): void {
    this.onUpdate = onUpdate;
    this.running = this.loop();
  }

  status(): DiscoveryStatus {
    return {
      source: 'registry',
      target: this.def.prefix,
      upstreams: this.published.length,
      ...(this.lastUpdate === undefined ? {} : { lastUpdate: new Date(this.lastUpdate).toISOString() }),
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
      failures: this.failures,
    };
  }

  async close(): Promise<void> {
    this.stop.abort();
    clearTimeout(this.sweeper);
    this.markSettled();
    await this.running;
  }

  private now(): number {
    return (this.deps.clock ?? Date.now)();
  }

  private async loop(): Promise<void> {
    const { signal } = this.stop;
    const { prefix } = this.def;
    let backoff = FIRST_BACKOFF;
    while (!signal.aborted) {
      try {
        const kv = await this.store();
        const listed = await kv.list(prefix);
        if (signal.aborted) return;
        const now = this.now();
        this.seen.clear();
        for (const e of listed.entries) this.note(e.key, e.value, now);
        this.lastUpdate = now;
        this.watching = true;
        this.failures = 0;
        this.lastError = undefined;
        this.publish();
        this.markSettled();
        this.sweep();
        for await (const change of kv.watch(prefix, { fromRevision: listed.revision, signal })) {
          if (change.type === 'delete') this.seen.delete(change.key);
          else this.note(change.key, change.value ?? '', this.now());
          this.lastUpdate = this.now();
          this.publish();
          backoff = FIRST_BACKOFF;
        }
        if (signal.aborted) return;
        throw new Error('the watch ended');
      } catch (err) {
        if (signal.aborted) return;
        this.watching = false;
        this.failures++;
        this.lastError = messageOf(err);
        this.deps.onFailure?.();
        this.deps.logger.warn(
          { prefix, err: this.lastError, failures: this.failures, retryMs: backoff },
          `registry discovery under ${prefix} failed: keeping the last ${this.published.length} upstream(s)`,
        );
        this.markSettled();
        await sleep(backoff, undefined, { signal }).catch(() => undefined);
        backoff = Math.min(MAX_BACKOFF, backoff * 2);
      }
    }
  }

  /** Records one key's value; a value that is not an entry is logged and left out. */
  private note(key: string, value: string, now: number): void {
    const entry = parseRegistryEntry(value);
    if (typeof entry === 'string') {
      this.seen.delete(key);
      this.deps.logger.warn(
        { key, problem: entry },
        `registry key ${key} is not an upstream entry: left out`,
      );
      return;
    }
    this.seen.set(key, { entry, seenAt: now });
  }

  /** Hands the live set over when it changed. */
  private publish(): void {
    const now = this.now();
    const live: DiscoveredUpstream[] = [];
    for (const { entry, seenAt } of this.seen.values()) {
      if (now - seenAt <= entry.ttl) live.push({ url: new URL(entry.url).origin, weight: entry.weight });
    }
    const next = normalise(live);
    if (sameSet(next, this.published)) return;
    this.published = next;
    this.onUpdate?.(next);
  }

  /** Lapses keys past their ttl while the watch runs (never while the store is away). */
  private sweep(): void {
    clearTimeout(this.sweeper);
    if (this.stop.signal.aborted) return;
    if (this.watching) this.publish();
    const ttls = [...this.seen.values()].map((s) => s.entry.ttl);
    const every = Math.min(1_000, Math.max(100, Math.min(...ttls, 4_000) / 4));
    this.sweeper = setTimeout(() => this.sweep(), every);
    this.sweeper.unref();
  }
}
