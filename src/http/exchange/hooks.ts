import type { Problem } from '../problem.js';
import type { RequestContext } from '../types.js';
import type { AttemptOutcome, RetryRefusal, ServicePool, Upstream } from '../upstream/types.js';

/**
 * What a caller of the streaming exchange (`forward`) may add around each attempt, for policies
 * the proxy handler has none of: the ambassador's circuit breakers, its bulkhead slot and its
 * metrics. Synchronous callbacks on one object per route, so a call allocates nothing for them:
 * a policy that needs a promise per attempt (cockatiel's `execute`) costs the hot path what the
 * streaming exchange was written to save.
 */
export interface ExchangeHooks {
  /**
   * Admission of an attempt on `upstream` (its circuit breaker): a ticket (>= 0) handed back to
   * `attemptEnded`, or -1 to skip the upstream for this attempt as if it were tried.
   */
  admit(upstream: Upstream): number;
  /**
   * An attempt ended: the outcome the pool was told (`pool.end`), its admission ticket, and the
   * status of an answer read and dropped for a retry (502/503/504, 429), else 0.
   */
  attemptEnded(upstream: Upstream, outcome: AttemptOutcome, ticket: number, dropped: number): void;
  /** The answer when every upstream refused admission (the circuit-open problem). */
  refused(pool: ServicePool): Problem;
  /** A retry was decided, by the condition it answers (`503`, `reset`, …). */
  retried(reason: string): void;
  /** A retry the rules allowed was refused: by the policy (attempts, budget…) or the deadline. */
  retryRefused(reason: RetryRefusal | 'refused' | 'deadline'): void;
  /** The client's status is decided: an upstream's head going out, or the exchange's problem. */
  answered(ctx: RequestContext, status: number): void;
  /** The exchange is over (answered to the end, cut, or the client left); called once. */
  done(ctx: RequestContext): void;
}

/** What one call adds to its route's `ForwardOptions`. */
export interface ForwardCall {
  /** The client's body, read whole already: sent on every attempt, so any attempt may be retried. */
  body?: Buffer;
  /** Headers added to every attempt after the client's (name them in `replacedHeaders`). */
  headers?: Readonly<Record<string, string>>;
}
