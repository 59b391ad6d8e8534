import type { Dispatcher } from 'undici';
import type { HealthCheckResult, Upstream } from './types.js';

/** Milliseconds since the epoch; injectable so ejection timing is testable without waiting. */
export type Clock = () => number;

/**
 * One origin of a service and everything the data plane tracks about it. The public face is the
 * read-only `Upstream` contract; the pool, the health checker and the outlier detector write the
 * mutable fields.
 */
export class UpstreamNode implements Upstream {
  readonly id: string;
  readonly origin: URL;
  /** Changed only by discovery (an SRV or registry weight that changed); the balancer is rebuilt then. */
  weight: number;
  readonly dispatcher: Dispatcher;
  /** Where the upstream came from: the static list, DNS or a registry. */
  source: 'static' | 'dns' | 'registry' = 'static';
  /** The TLS name of an https upstream found by address (the DNS name it was found under). */
  servername: string | undefined;
  inFlight = 0;
  /** Set by active health checks; stays true when none are configured. */
  healthy = true;
  /** Epoch ms until which passive outlier detection keeps this upstream out; 0: never ejected. */
  ejectedUntil = 0;
  /** Ejections so far, decayed while the upstream behaves (see OutlierDetector). */
  ejections = 0;
  consecutive5xx = 0;
  consecutiveConnectFailures = 0;
  /** The last active health check (undefined until one has run, or when none are configured). */
  lastHealthCheck: HealthCheckResult | undefined;
  /** Whether the re-admission after the last ejection has been logged. */
  readmissionNoted = true;
  /** The last TLS alert seen on one of this upstream's connections (set by the pool's connector). */
  tlsAlert: { reason: string; at: number } | undefined;
  private readonly clock: Clock;

  constructor(origin: URL, weight: number, dispatcher: Dispatcher, clock: Clock) {
    this.origin = origin;
    this.id = origin.origin;
    this.weight = weight;
    this.dispatcher = dispatcher;
    this.clock = clock;
  }

  get ejected(): boolean {
    // Re-admission is lazy: an ejection simply runs out, so no timer has to be kept or cleared.
    return this.ejectedUntil !== 0 && this.ejectedUntil > this.clock();
  }

  recentTlsFailure(): string | undefined {
    const alert = this.tlsAlert;
    return alert !== undefined && this.clock() - alert.at < 5_000 ? alert.reason : undefined;
  }

  /** Healthy and not ejected: the balancers' first choice. */
  get available(): boolean {
    return this.healthy && !this.ejected;
  }
}
