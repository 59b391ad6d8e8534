import { createHash } from 'node:crypto';
import { TrellisError } from '../core/errors.js';
import type { KeyValueStore } from '../stores/types.js';
import type { BusMiddleware, Envelope } from './bus.js';

/** What an idempotency store keeps per scoped key. */
export interface IdempotencyRecord {
  /** A hash of the payload the key was first used with: the same key with another payload is refused. */
  fingerprint: string;
  /** True once the run finished; its result is then in `result`. */
  done: boolean;
  result?: unknown;
}

/**
 * Where idempotency records live. `memoryIdempotencyStore()` suits one process;
 * `kvIdempotencyStore(kv)` shares them across instances through any KeyValueStore.
 */
export interface IdempotencyStore {
  /** The record for this key, if there is one that has not expired. */
  get(key: string): Promise<IdempotencyRecord | undefined>;
  /** Claims the key for a run (atomically): false when another run holds it or finished it. */
  claim(key: string, fingerprint: string, ttlMs: number): Promise<boolean>;
  /** Records the finished run's result, kept for `ttlMs`. */
  complete(key: string, fingerprint: string, result: unknown, ttlMs: number): Promise<void>;
  /** Drops a claim after a failed run, so a retry can run. */
  release(key: string): Promise<void>;
}

/** Idempotency records in memory, forgotten after their TTL. */
export function memoryIdempotencyStore(): IdempotencyStore {
  const map = new Map<string, IdempotencyRecord & { until: number }>();
  const live = (key: string) => {
    const hit = map.get(key);
    if (hit && hit.until < Date.now()) {
      map.delete(key);
      return undefined;
    }
    return hit;
  };
  return {
    async get(key) {
      const hit = live(key);
      return hit && { fingerprint: hit.fingerprint, done: hit.done, result: hit.result };
    },
    async claim(key, fingerprint, ttlMs) {
      if (live(key)) return false;
      map.set(key, { fingerprint, done: false, until: Date.now() + ttlMs });
      return true;
    },
    async complete(key, fingerprint, result, ttlMs) {
      map.set(key, { fingerprint, done: true, result, until: Date.now() + ttlMs });
    },
    async release(key) {
      map.delete(key);
    },
  };
}

interface StoredRecord extends IdempotencyRecord {
  expiresAt: number;
}

/**
 * Idempotency records in a KeyValueStore (SQLite, PostgreSQL, Redis, etcd), shared by every
 * instance that opens the same store: a claim is a compare-and-set create, so of two instances
 * that receive the same retried command at once exactly one runs it. Results are stored as JSON.
 * Keys are `prefix` + a hash; expired records are replaced on the next claim (the KV building
 * block has no TTL of its own).
 */
export function kvIdempotencyStore(kv: KeyValueStore, options: { prefix?: string } = {}): IdempotencyStore {
  const prefix = options.prefix ?? 'trellis/idempotency/';
  const read = async (key: string) => {
    const entry = await kv.get(prefix + key);
    if (!entry) return undefined;
    const record = JSON.parse(entry.value) as StoredRecord;
    return { entry, record, expired: record.expiresAt < Date.now() };
  };
  return {
    async get(key) {
      const hit = await read(key);
      if (!hit || hit.expired) return undefined;
      const { fingerprint, done, result } = hit.record;
      return { fingerprint, done, result };
    },
    async claim(key, fingerprint, ttlMs) {
      const hit = await read(key);
      if (hit && !hit.expired) return false;
      const value: StoredRecord = { fingerprint, done: false, expiresAt: Date.now() + ttlMs };
      try {
        await kv.put(prefix + key, JSON.stringify(value), { expectedRevision: hit?.entry.revision ?? 0 });
        return true;
      } catch (err) {
        if ((err as { code?: string }).code === 'TRELLIS_E_KV_CONFLICT') return false;
        throw err;
      }
    },
    async complete(key, fingerprint, result, ttlMs) {
      const value: StoredRecord = { fingerprint, done: true, result, expiresAt: Date.now() + ttlMs };
      await kv.put(prefix + key, JSON.stringify(value));
    },
    async release(key) {
      await kv.delete(prefix + key);
    },
  };
}

/** JSON with object keys sorted, so `{a,b}` and `{b,a}` fingerprint alike. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : typeof v === 'bigint'
        ? v.toString()
        : v,
  );
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url');

/** Who owns an idempotency key: the tenant and the principal, as strings. */
export interface IdempotencyScope {
  tenant?: string;
  principal?: string;
}

/**
 * The default scope: the principal is a string or number as given, or an object's `sub` (JWT
 * claims), `id` or `userId`, or else the whole object; the tenant is `context.tenant`, or the
 * principal's `tenant`, `tenantId` or `tid`. Calls without a principal share the anonymous scope.
 */
export function defaultIdempotencyScope(env: Envelope): IdempotencyScope {
  const p = env.principal as Record<string, unknown> | string | number | undefined | null;
  let principal: string | undefined;
  let tenant = env.context.tenant as string | undefined;
  if (typeof p === 'string' || typeof p === 'number') principal = String(p);
  else if (p && typeof p === 'object') {
    const id = p.sub ?? p.id ?? p.userId;
    principal = id === undefined ? canonicalJson(p) : String(id);
    tenant ??= (p.tenant ?? p.tenantId ?? p.tid) as string | undefined;
  }
  return { principal, ...(tenant === undefined ? {} : { tenant: String(tenant) }) };
}

export interface IdempotencyOptions {
  /** Where records live (default: memory, this process only). */
  store?: IdempotencyStore;
  /** How long a finished run's result is remembered (default 24 h). */
  ttlMs?: number;
  /** How long a claim holds the key while the command runs, should its process die (default 60 s). */
  runningTtlMs?: number;
  /** Who owns a key (default `defaultIdempotencyScope`): keys never match across scopes. */
  scope?: (env: Envelope) => IdempotencyScope;
}

/**
 * A command with an idempotency key already seen answers with the first run's result and does
 * not run again; concurrent retries share one run. Keys are scoped by command name, tenant and
 * principal, so one caller's key is never another's answer. The same key with a different
 * payload is refused (TRELLIS_E_IDEMPOTENCY_KEY_REUSED, 422), as Stripe and the IETF
 * Idempotency-Key draft do; a key whose first run is still going on another instance answers
 * TRELLIS_E_IDEMPOTENCY_IN_PROGRESS (409). Failures are not kept, so a failed command can be retried.
 */
export function idempotency(options: IdempotencyOptions = {}): BusMiddleware {
  const store = options.store ?? memoryIdempotencyStore();
  const ttl = options.ttlMs ?? 24 * 3600_000;
  const runningTtl = options.runningTtlMs ?? 60_000;
  const scopeOf = options.scope ?? defaultIdempotencyScope;
  const running = new Map<string, { fingerprint: string; run: Promise<unknown> }>();
  return async (env, next) => {
    if (!env.idempotencyKey) return next();
    const scope = scopeOf(env);
    const key = sha256(
      JSON.stringify([env.name, scope.tenant ?? null, scope.principal ?? null, env.idempotencyKey]),
    );
    const fingerprint = sha256(canonicalJson(env.payload) ?? 'undefined');
    const reused = () =>
      new TrellisError(
        'TRELLIS_E_IDEMPOTENCY_KEY_REUSED',
        `idempotency key "${env.idempotencyKey}" was already used for "${env.name}" with a different payload: use a new key for a new command`,
        { status: 422 },
      );
    const inFlight = running.get(key);
    if (inFlight) {
      if (inFlight.fingerprint !== fingerprint) throw reused();
      return inFlight.run;
    }
    const answer = (record: IdempotencyRecord) => {
      if (record.fingerprint !== fingerprint) throw reused();
      if (record.done) return { hit: true as const, result: record.result };
      throw new TrellisError(
        'TRELLIS_E_IDEMPOTENCY_IN_PROGRESS',
        `a "${env.name}" command with idempotency key "${env.idempotencyKey}" is still running: retry in a moment for its result`,
        { status: 409 },
      );
    };
    const run = (async () => {
      const seen = await store.get(key);
      if (seen) return answer(seen).result;
      if (!(await store.claim(key, fingerprint, runningTtl))) {
        // Another instance claimed it between our read and our claim.
        const now = await store.get(key);
        if (now) return answer(now).result;
        // …and already gave it up (its run failed): the caller's retry will find the key free.
        return answer({ fingerprint, done: false });
      }
      let result: unknown;
      try {
        result = await next();
      } catch (err) {
        await store.release(key).catch(() => undefined);
        throw err;
      }
      await store.complete(key, fingerprint, result, ttl);
      return result;
    })();
    running.set(key, { fingerprint, run });
    try {
      return await run;
    } finally {
      running.delete(key);
    }
  };
}
