import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { DiscoveryStatus } from './discovery/types.js';

/**
 * The contract between the upstream layer (pools, balancing, health, outlier ejection, retry
 * policy: `http/upstream/`) and the handlers that use it (the proxy handler, aggregation,
 * strangler, ambassador). Additive changes only: several parts build on it at once.
 */

/**
 * How one attempt against an upstream ended, for passive outlier detection. `cancelled`: the
 * caller gave up for its own reasons (the client left or was too slow, a sibling part failed):
 * it says nothing about the upstream, neither good nor bad.
 */
export type AttemptOutcome = 'success' | 'http5xx' | 'connectFailure' | 'timeout' | 'reset' | 'cancelled';

export interface Upstream {
  /** The origin, `http://127.0.0.1:3001`. */
  readonly id: string;
  readonly origin: URL;
  readonly weight: number;
  /** A keep-alive undici Pool for this origin. */
  readonly dispatcher: Dispatcher;
  /** Requests in flight now (least-request balancing reads it; callers inc/dec via begin/end). */
  readonly inFlight: number;
  /** Passing active health checks (true when no checks are configured). */
  readonly healthy: boolean;
  /** Ejected by passive outlier detection right now. */
  readonly ejected: boolean;
  /**
   * The TLS alert a connection to this upstream failed with in the last seconds, in words
   * (`certificate required: …`), or undefined. A TLS 1.3 server refuses a client certificate
   * after the client's handshake is done, so the request itself only sees a closed socket.
   */
  recentTlsFailure?(): string | undefined;
}

export interface UpstreamStatus {
  id: string;
  weight: number;
  healthy: boolean;
  ejected: boolean;
  ejectedUntil?: string;
  ejections: number;
  inFlight: number;
  consecutiveFailures: number;
  /** The last active health check, when checks are configured. */
  lastHealthCheck?: HealthCheckResult;
  /** Where the upstream came from: `static` (upstreams:), `dns` or `registry` (discovery:). */
  source?: 'static' | 'dns' | 'registry';
}

/** One active health check's result, as the admin API shows it. */
export interface HealthCheckResult {
  /** ISO time the check finished. */
  at: string;
  passed: boolean;
  /** `status 200`, `status 503`, `timeout`, `ECONNREFUSED`, … */
  detail: string;
}

export interface ServiceStatus {
  name: string;
  balance: string;
  upstreams: UpstreamStatus[];
  /** The discovery source and its last answer, for a service with `discovery:`. */
  discovery?: DiscoveryStatus;
  /** The `tls:` block's client certificate and CA bundle: when they expire. */
  tls?: { field: 'ca' | 'cert'; file: string; notAfter: string; daysLeft: number }[];
}

export interface Timeouts {
  /** TCP connect, ms. */
  connect: number;
  /** From request sent to response headers, ms. */
  headers: number;
  /** Whole exchange, ms (0: none). */
  request: number;
}

export interface RetryDecisionInput {
  method: string;
  /** 1 after the first failed attempt. */
  attempt: number;
  /** A response status that failed the attempt (502/503/504), or undefined for an error. */
  status?: number;
  outcome: AttemptOutcome;
  /** The route said non-idempotent methods may be retried. */
  retryNonIdempotent: boolean;
  /** Whether any request body byte has been sent (a streamed body cannot be replayed). */
  bodySent: boolean;
}

/** Why a retry was refused. */
export type RetryRefusal = 'attempts' | 'body-sent' | 'not-idempotent' | 'condition' | 'budget';

export interface RetryPolicy {
  readonly attempts: number;
  /** Whether another attempt may be made; also charges the retry budget when it says yes. */
  shouldRetry(input: RetryDecisionInput): boolean;
  /**
   * `shouldRetry` that says why not (undefined: retry, budget charged), for callers that count
   * budget exhaustion. Optional so other implementations of this contract need not have it.
   */
  decide?(input: RetryDecisionInput): RetryRefusal | undefined;
  /** Jittered backoff before attempt `attempt + 1`, ms. */
  backoffMs(attempt: number): number;
  /**
   * Takes one hedge (a second attempt sent while the first is still out) from the retry budget:
   * false when spent. Optional so other implementations of this contract need not have it.
   */
  chargeHedge?(): boolean;
}

export interface ServicePool {
  readonly name: string;
  readonly upstreams: readonly Upstream[];
  readonly timeouts: Timeouts;
  readonly retry: RetryPolicy;
  /**
   * Chooses an available upstream (healthy, not ejected) by the service's balancer; `hashKey`
   * feeds consistent hashing; `exclude` skips upstreams already tried. When every upstream is
   * unavailable it still returns one (never eject all: a guess beats a certain 503).
   */
  pick(hashKey?: string, exclude?: ReadonlySet<Upstream>): Upstream | undefined;
  /** Marks the start of a request on an upstream (least-request accounting). */
  begin(upstream: Upstream): void;
  /** Marks the end and feeds passive outlier detection. */
  end(upstream: Upstream, outcome: AttemptOutcome, latencyMs: number): void;
  status(): ServiceStatus;
  close(): Promise<void>;
  /**
   * The key consistent hashing needs for a request (per the service's `hashOn`), or undefined
   * when the service does not hash: pass it to `pick`. Optional so other implementations of this
   * contract need not have it.
   */
  hashKey?(headers: IncomingHttpHeaders, clientIp: string): string | undefined;
  /**
   * Calls `listener` after discovery changed `upstreams`; returns the unsubscribe. Optional: a
   * pool whose set never changes need not have it.
   */
  onUpstreamsChange?(listener: () => void): () => void;
}
