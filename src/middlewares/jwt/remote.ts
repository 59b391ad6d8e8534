import {
  type CompactJWSHeaderParameters,
  createLocalJWKSet,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
} from 'jose';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from '../../core/metrics.js';
import type { HealthReport } from '../types.js';

/** How a remote key set is fetched and kept. */
export interface RemoteKeySetOptions {
  url: string;
  /** Minimum time between two fetches, successful or not (ms). */
  cooldown: number;
  /** Refetch after this even when every `kid` is known (ms). */
  cacheMaxAge: number;
  /** One fetch's deadline (ms). */
  fetchTimeout: number;
  logger: Logger;
  metrics: Registry;
  /** The middleware's name, for logs and metric labels. */
  name: string;
}

/** No key set could be had: the caller answers 503 and says when to try again. */
export class KeysUnavailable extends Error {
  constructor(
    message: string,
    /** Seconds until the next fetch may be tried. */
    readonly retryAfter: number,
  ) {
    super(message);
  }
}

/** A JWKS larger than this is refused (a key set is a few KB; this bounds a hostile answer). */
const MAX_JWKS_BYTES = 1024 * 1024;

function shared<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/**
 * A remote JWKS that survives its identity provider's outages. Hand-written over jose's
 * `createLocalJWKSet` because jose's `createRemoteJWKSet` drops its keys once `cacheMaxAge`
 * passes and a refetch fails (an outage longer than the max age becomes a total one), applies
 * its cooldown only to unknown kids (a failing endpoint is fetched on every request), and
 * gives no way to report that it is serving stale keys.
 *
 * Rules: the last good key set is kept for as long as no new one can be had; every fetch,
 * failed or not, starts a cooldown; a key set past its age is refreshed in the background
 * while the old one keeps verifying; with no key set at all, callers get `KeysUnavailable`.
 */
export class RemoteKeySet {
  private local: JWTVerifyGetKey | undefined;
  private fetchedAt = 0;
  private lastAttempt = Number.NEGATIVE_INFINITY;
  private lastError: string | undefined;
  private pending: Promise<void> | undefined;
  private readonly fetches: Counter<'middleware' | 'result'>;
  private readonly stale: Gauge<'middleware'>;

  constructor(private readonly o: RemoteKeySetOptions) {
    this.fetches = shared(
      o.metrics,
      'trellis_jwks_fetches_total',
      () =>
        new Counter({
          name: 'trellis_jwks_fetches_total',
          help: 'JWKS fetches by result (ok, failed)',
          labelNames: ['middleware', 'result'],
          registers: [o.metrics],
        }),
    );
    this.stale = shared(
      o.metrics,
      'trellis_jwks_stale',
      () =>
        new Gauge({
          name: 'trellis_jwks_stale',
          help: '1 while the jwt middleware verifies with a key set past jwksCacheMaxAge because refreshing it fails (2: no key set at all)',
          labelNames: ['middleware'],
          registers: [o.metrics],
        }),
    );
    const age = shared(
      o.metrics,
      'trellis_jwks_age_seconds',
      () =>
        new Gauge({
          name: 'trellis_jwks_age_seconds',
          help: 'Age of the JWKS the jwt middleware verifies with',
          labelNames: ['middleware'],
          registers: [o.metrics],
          collect() {
            for (const set of liveSets.get(o.metrics) ?? []) set.reportAge(this as Gauge<'middleware'>);
          },
        }),
    );
    void age;
    if (!liveSets.has(o.metrics)) liveSets.set(o.metrics, new Set());
    liveSets.get(o.metrics)!.add(this);
    this.stale.labels(o.name).set(0);
  }

  /** The resolver jose's `jwtVerify` calls. */
  readonly getKey = async (header: CompactJWSHeaderParameters, token: FlattenedJWSInput) => {
    if (this.local === undefined) {
      await this.refresh();
      if (this.local === undefined) throw this.unavailable();
    } else if (Date.now() - this.fetchedAt >= this.o.cacheMaxAge) {
      // Past its age: refresh in the background; until then (and for as long as refreshing
      // fails) the keys we have keep verifying.
      void this.refresh();
    }
    try {
      return await this.local!(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      // An unknown kid: the provider may have rotated its keys. Refetch (at most once per
      // cooldown, so made-up kids cannot hammer it) and look again.
      await this.refresh();
      if (this.lastError !== undefined) throw this.unavailable();
      return this.local!(header, token);
    }
  };

  /** What `/readyz` shows: ok, stale keys in use, or no keys at all. */
  health(): HealthReport {
    if (this.local === undefined) {
      return {
        status: 'unavailable',
        detail: `no JWKS yet from ${this.o.url}${this.lastError ? `: ${this.lastError}` : ''}; tokens are answered 503`,
      };
    }
    const age = Math.floor((Date.now() - this.fetchedAt) / 1000);
    if (this.lastError !== undefined && Date.now() - this.fetchedAt >= this.o.cacheMaxAge) {
      return {
        status: 'degraded',
        detail: `verifying with the last good JWKS (${age}s old, past jwksCacheMaxAge): refreshing from ${this.o.url} fails: ${this.lastError}`,
      };
    }
    return { status: 'ok' };
  }

  /** Stops reporting metrics for this set (a reload replaced the middleware). */
  close(): void {
    liveSets.get(this.o.metrics)?.delete(this);
  }

  private reportAge(g: Gauge<'middleware'>): void {
    if (this.local !== undefined) g.labels(this.o.name).set((Date.now() - this.fetchedAt) / 1000);
  }

  private unavailable(): KeysUnavailable {
    const wait = Math.max(1, Math.ceil((this.lastAttempt + this.o.cooldown - Date.now()) / 1000));
    return new KeysUnavailable(this.lastError ?? 'the key set could not be fetched', wait);
  }

  /** Fetches the set unless a fetch is running (then waits for it) or the cooldown is on. */
  refresh(): Promise<void> {
    if (this.pending) return this.pending;
    const now = Date.now();
    if (now - this.lastAttempt < this.o.cooldown) return Promise.resolve();
    this.lastAttempt = now;
    this.pending = this.fetchSet()
      .then((set) => {
        const wasFailing = this.lastError !== undefined;
        this.local = set;
        this.fetchedAt = Date.now();
        this.lastError = undefined;
        this.fetches.labels(this.o.name, 'ok').inc();
        this.stale.labels(this.o.name).set(0);
        if (wasFailing)
          this.o.logger.info({ jwks: this.o.url }, 'jwt: JWKS fetched again; key set refreshed');
      })
      .catch((err: unknown) => {
        this.lastError = err instanceof Error ? err.message : String(err);
        this.fetches.labels(this.o.name, 'failed').inc();
        const past = this.local !== undefined && Date.now() - this.fetchedAt >= this.o.cacheMaxAge;
        this.stale.labels(this.o.name).set(this.local === undefined ? 2 : past ? 1 : 0);
        this.o.logger.warn(
          {
            jwks: this.o.url,
            err: this.lastError,
            keptKeysAgeSeconds:
              this.local === undefined ? undefined : Math.floor((Date.now() - this.fetchedAt) / 1000),
            retryInSeconds: Math.ceil(this.o.cooldown / 1000),
          },
          this.local === undefined
            ? 'jwt: JWKS fetch failed and no key set is known: tokens are answered 503'
            : 'jwt: JWKS fetch failed: still verifying with the last good key set',
        );
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }

  private async fetchSet(): Promise<JWTVerifyGetKey> {
    const res = await fetch(this.o.url, {
      headers: { accept: 'application/json, application/jwk-set+json' },
      redirect: 'manual',
      signal: AbortSignal.timeout(this.o.fetchTimeout),
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`the JWKS endpoint answered ${res.status}`);
    }
    const declared = Number(res.headers.get('content-length') ?? 0);
    if (declared > MAX_JWKS_BYTES) {
      await res.body?.cancel();
      throw new Error(`the JWKS is larger than ${MAX_JWKS_BYTES} bytes`);
    }
    const text = await res.text();
    if (text.length > MAX_JWKS_BYTES) throw new Error(`the JWKS is larger than ${MAX_JWKS_BYTES} bytes`);
    let set: unknown;
    try {
      set = JSON.parse(text);
    } catch {
      throw new Error('the JWKS is not JSON');
    }
    const keys = (set as { keys?: unknown })?.keys;
    // A set with no usable key is as good as none: keep the last good one instead.
    if (
      !Array.isArray(keys) ||
      !keys.some(
        (k) => typeof k === 'object' && k !== null && typeof (k as { kty?: unknown }).kty === 'string',
      )
    )
      throw new Error('the JWKS has no keys ({"keys": [...]} with at least one key)');
    return createLocalJWKSet(set as JSONWebKeySet);
  }
}

/** Per metrics registry, the sets whose age its gauge reports (one per jwt middleware with a jwksUrl). */
const liveSets = new WeakMap<Registry, Set<RemoteKeySet>>();
