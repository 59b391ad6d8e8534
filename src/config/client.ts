import type { Logger } from 'pino';
import type { z } from 'zod';
import { isTrellisError, messageOf, TrellisError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { schemeOf } from '../stores/connection.js';
import type { ConfigApi, ConfigChange } from './api.js';
import { type ConfigDocument, checkConfigPrefix, checkLabel, DEFAULT_LABEL } from './document.js';
import { evaluateFlag, type FlagContext, flagSchema } from './flags.js';
import { ConfigHttpClient } from './http-client.js';
import { readSnapshot, type Snapshot, SnapshotWriter } from './last-known-good.js';
import { LazyRepository } from './lazy-repository.js';
import { resolveSecrets } from './secrets.js';

const KV_SCHEMES = ['memory', 'sqlite', 'postgres', 'redis', 'etcd'];

export interface ConfigClientOptions {
  /** A config server (`http://…`), a store URL (`sqlite:…`, `postgres://…`, `redis://…`, `etcd://…`), or a ConfigApi. */
  source: string | ConfigApi;
  /** Token for a config server (a read token is enough). */
  token?: string;
  /** Which keys to follow (default: every key of the label). */
  prefix?: string;
  label?: string;
  /** File for the last-known-good copy, served when the store is unreachable. Absent: none on disk. */
  cacheFile?: string;
  /** Reconnect backoff: full jitter between 0 and min(maxMs, initialMs × 2^attempt). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Where documents of feature flags live (default `flags/`): flag `x` is the document `flags/x`. */
  flagsPrefix?: string;
  /** Environment for `secret://env/NAME` (default process.env). */
  env?: Record<string, string | undefined>;
  logger?: Logger;
}

/** Where the client's documents come from right now. */
export interface ConfigHealth {
  /** True while connected to the store and up to date. */
  ok: boolean;
  /** `store`: live; `last-known-good`: serving the last copy because the store is unreachable. */
  source: 'store' | 'last-known-good' | 'none';
  revision: number;
  /** When the store was last reached. */
  lastSyncAt?: string;
  /** Since when the client has been serving a copy. */
  degradedSince?: string;
  /** Why the store is unreachable (never a secret). */
  error?: string;
}

export type ConfigListener = (change: ConfigChange) => void;

/**
 * Follows configuration documents for an application: typed reads from memory, a subscription
 * that delivers each change once and in revision order, a full resync after a gap signal, a
 * last-known-good copy on disk served when the store is unreachable, reconnect backoff with
 * jitter, and feature flags evaluated locally. Secret references are resolved only here, on read.
 */
export class ConfigClient {
  readonly #api: ConfigApi;
  readonly #ownsApi: boolean;
  readonly #prefix: string;
  readonly #label: string;
  readonly #log: Logger;
  readonly #options: ConfigClientOptions;
  readonly #writer: SnapshotWriter | undefined;
  readonly #closing = new AbortController();
  readonly #listeners = new Set<ConfigListener>();
  #docs = new Map<string, ConfigDocument>();
  #resolved = new Map<string, { revision: number; value: unknown }>();
  #revision = 0;
  #health: ConfigHealth = { ok: false, source: 'none', revision: 0 };
  #loop: Promise<void> | undefined;
  #firstSync: { resolve: () => void; reject: (e: unknown) => void; promise: Promise<void> };

  constructor(api: ConfigApi, options: ConfigClientOptions, ownsApi = false) {
    this.#api = api;
    this.#ownsApi = ownsApi;
    this.#options = options;
    this.#prefix = options.prefix ?? '';
    this.#label = options.label ?? DEFAULT_LABEL;
    checkConfigPrefix(this.#prefix);
    checkLabel(this.#label);
    this.#log = (options.logger ?? silentLogger()).child({ prefix: this.#prefix, label: this.#label });
    this.#writer = options.cacheFile ? new SnapshotWriter(options.cacheFile) : undefined;
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined);
    this.#firstSync = { resolve, reject, promise };
  }

  /**
   * Loads from the store, or from the last-known-good copy when the store is unreachable, and
   * starts following changes. Rejects with TRELLIS_E_CONFIG_UNAVAILABLE when neither works.
   */
  async start(): Promise<void> {
    this.#loop ??= this.#follow();
    await this.#firstSync.promise;
  }

  /** The document's value with secrets resolved, checked against `schema` when given. */
  get<T = unknown>(key: string, schema?: z.ZodType<T>): T | undefined {
    const doc = this.#docs.get(key);
    if (!doc) return undefined;
    let cached = this.#resolved.get(key);
    if (cached?.revision !== doc.revision) {
      cached = { revision: doc.revision, value: resolveSecrets(doc.value, this.#options.env) };
      this.#resolved.set(key, cached);
    }
    if (!schema) return cached.value as T;
    const r = schema.safeParse(cached.value);
    if (r.success) return r.data;
    const where = r.error.issues.map((i) => `${i.path.join('.') || '(document)'}: ${i.message}`).join('; ');
    throw new TrellisError(
      'TRELLIS_E_CONFIG_TYPE_MISMATCH',
      `${key}@${this.#label} (revision ${doc.revision}) does not have the expected shape: ${where}`,
    );
  }

  /** The stored document (secret references unresolved), with revision, author and time. */
  document(key: string): ConfigDocument | undefined {
    return this.#docs.get(key);
  }

  /** Keys currently known, sorted. */
  keys(): string[] {
    return [...this.#docs.keys()].sort();
  }

  /** The revision the client is at. */
  get revision(): number {
    return this.#revision;
  }

  /** Calls `listener` for every later change, once each, in revision order. Returns an unsubscribe. */
  subscribe(listener: ConfigListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Where documents come from now: live or last-known-good, at which revision, last synced when. */
  health(): ConfigHealth {
    return { ...this.#health };
  }

  /** Evaluates feature flag `name` (document `flags/<name>`); false when absent or malformed. */
  flag(name: string, context: FlagContext = {}): boolean {
    const value = this.#docs.get((this.#options.flagsPrefix ?? 'flags/') + name)?.value;
    if (value === undefined) return false;
    const parsed = flagSchema.safeParse(value);
    if (!parsed.success) {
      this.#log.warn({ flag: name }, 'flag document is malformed: treating the flag as off');
      return false;
    }
    return evaluateFlag(name, parsed.data, context);
  }

  /** Stops following; waits until the last-known-good copy is written. */
  async close(): Promise<void> {
    this.#closing.abort();
    await this.#loop;
    await this.#writer?.flush();
    if (this.#ownsApi) await this.#api.close().catch(() => undefined);
  }

  async #follow(): Promise<void> {
    const signal = this.#closing.signal;
    const initialMs = this.#options.backoff?.initialMs ?? 200;
    const maxMs = this.#options.backoff?.maxMs ?? 10_000;
    let attempt = 0;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          const snapshot = await this.#api.list(this.#prefix, this.#label);
          if (signal.aborted) break;
          this.#applySnapshot(snapshot.documents, snapshot.revision);
          needList = false;
        } else if (!this.#health.ok) {
          // Back after an outage: prove the store answers, then resume the watch from our
          // revision so every missed change arrives once, in order (a gap falls back to a list).
          await this.#api.list(this.#prefix, this.#label);
          this.#markLive();
        }
        attempt = 0;
        for await (const change of this.#api.watch(this.#prefix, {
          label: this.#label,
          fromRevision: this.#revision,
          signal,
        })) {
          this.#apply(change);
        }
        if (signal.aborted) break;
        throw new TrellisError('TRELLIS_E_CONFIG_UNREACHABLE', 'the watch ended: reconnecting');
      } catch (err) {
        if (signal.aborted) break;
        if (isTrellisError(err, 'TRELLIS_E_KV_WATCH_GAP')) {
          this.#log.warn('missed changes (watch gap): reloading everything');
          needList = true;
          continue;
        }
        await this.#degrade(err);
        const delay = Math.random() * Math.min(maxMs, initialMs * 2 ** attempt);
        attempt += 1;
        await new Promise<void>((r) => {
          const done = () => {
            clearTimeout(t);
            signal.removeEventListener('abort', done);
            r();
          };
          const t = setTimeout(done, delay);
          signal.addEventListener('abort', done, { once: true });
        });
      }
    }
  }

  /** Replaces everything with a fresh listing, telling subscribers what changed meanwhile. */
  #applySnapshot(documents: ConfigDocument[], revision: number): void {
    const fresh = new Map(documents.map((d) => [d.key, d]));
    const changes: ConfigChange[] = [];
    for (const [key, doc] of fresh) {
      if (this.#docs.get(key)?.revision !== doc.revision) {
        changes.push({ type: 'put', key, label: this.#label, revision: doc.revision, document: doc });
      }
    }
    for (const key of this.#docs.keys()) {
      if (!fresh.has(key)) changes.push({ type: 'delete', key, label: this.#label, revision });
    }
    this.#docs = fresh;
    this.#revision = Math.max(this.#revision, revision);
    this.#markLive();
    this.#save();
    this.#firstSync.resolve();
    for (const c of changes.sort((a, b) => a.revision - b.revision)) this.#emit(c);
  }

  #apply(change: ConfigChange): void {
    // A watch resumed after a reconnect may repeat what was already applied: deliver each revision once.
    if (change.revision <= this.#revision) return;
    this.#revision = change.revision;
    if (change.type === 'put' && change.document) this.#docs.set(change.key, change.document);
    else this.#docs.delete(change.key);
    this.#resolved.delete(change.key);
    // A change from the watch is the store speaking: health says which revision is served, and when.
    this.#markLive();
    this.#save();
    this.#emit(change);
  }

  #emit(change: ConfigChange): void {
    for (const l of this.#listeners) {
      try {
        l(change);
      } catch (err) {
        this.#log.error({ err: messageOf(err), key: change.key }, 'a config subscriber threw');
      }
    }
  }

  #markLive(): void {
    if (this.#health.source === 'last-known-good')
      this.#log.info('store reachable again: serving live configuration');
    this.#health = {
      ok: true,
      source: 'store',
      revision: this.#revision,
      lastSyncAt: new Date().toISOString(),
    };
  }

  async #degrade(err: unknown): Promise<void> {
    const error = messageOf(err);
    if (this.#health.source === 'none' && this.#options.cacheFile) {
      const s = await readSnapshot(this.#options.cacheFile, this.#prefix, this.#label);
      if (s) {
        this.#docs = new Map(s.documents.map((d) => [d.key, d]));
        this.#revision = s.revision;
        this.#log.warn(
          { revision: s.revision, savedAt: s.savedAt, error },
          'store unreachable: serving last-known-good',
        );
      }
    }
    if (this.#health.source === 'none' && this.#docs.size === 0 && this.#revision === 0) {
      this.#health = { ok: false, source: 'none', revision: 0, error };
      this.#firstSync.reject(
        new TrellisError(
          'TRELLIS_E_CONFIG_UNAVAILABLE',
          `cannot load configuration: the store is unreachable (${error}) and there is no last-known-good copy${this.#options.cacheFile ? ` at ${this.#options.cacheFile}` : ' (set cacheFile)'}`,
          { cause: err },
        ),
      );
      return;
    }
    if (this.#health.ok || this.#health.source === 'none') {
      this.#log.warn({ error }, 'store unreachable: serving the last-known-good copy');
    }
    this.#health = {
      ok: false,
      source: 'last-known-good',
      revision: this.#revision,
      lastSyncAt: this.#health.lastSyncAt,
      degradedSince: this.#health.degradedSince ?? new Date().toISOString(),
      error,
    };
    this.#firstSync.resolve();
  }

  #save(): void {
    this.#writer?.save({
      format: 'trellis-config-lkg/1',
      prefix: this.#prefix,
      label: this.#label,
      revision: this.#revision,
      savedAt: new Date().toISOString(),
      documents: [...this.#docs.values()],
    } satisfies Snapshot);
  }
}

/**
 * The API a source string names: a config server URL, or a store URL used directly (opened on
 * first use and retried, so a client can start on its last-known-good copy while the store is down).
 */
export async function openConfigApi(source: string, token?: string): Promise<ConfigApi> {
  if (/^https?:\/\//i.test(source)) return new ConfigHttpClient({ url: source, token });
  schemeOf(source, 'KeyValueStore', KV_SCHEMES);
  return new LazyRepository(source);
}

/** Creates a client and waits until it serves configuration (live, or last-known-good). */
export async function createConfigClient(options: ConfigClientOptions): Promise<ConfigClient> {
  const owns = typeof options.source === 'string';
  const api =
    typeof options.source === 'string' ? await openConfigApi(options.source, options.token) : options.source;
  const client = new ConfigClient(api, options, owns);
  try {
    await client.start();
  } catch (err) {
    await client.close();
    throw err;
  }
  return client;
}
