import type { AttemptOutcome, RetryRefusal, ServicePool } from '../upstream/types.js';

/** What is known about a failed attempt when deciding on the next one. */
export interface AttemptFacts {
  method: string;
  /** Attempts made so far (1 after the first). */
  attempt: number;
  outcome: AttemptOutcome;
  /** The status of an answer that failed the attempt (a 5xx), if there was one. */
  status?: number | undefined;
  /** The caller allows non-idempotent methods (POST, PATCH) to be sent again. */
  retryNonIdempotent: boolean;
  /** A body byte has left and the body cannot be sent again (a stream; a buffer always can). */
  bodySent: boolean;
  /** A 429 answer may be retried too (when `retry.on` names it): the ambassador honours Retry-After. */
  retry429?: boolean;
}

/**
 * The one retry rule of the data plane, used by every form of the forwarding exchange (the
 * proxy's stream, aggregate parts, and the handlers built on them):
 * - only failures are retried: connect failures, resets, timeouts, and answers 502/503/504
 *   (never a 500, which is the origin's own verdict, nor a cancellation by the caller), and
 *   429 for callers that opt in;
 * - then the service's policy decides: attempts left, the method idempotent (RFC 9110 9.2.2)
 *   or the caller opted in, no streamed body byte sent, the condition in `retry.on`, and the
 *   retry budget, which it charges when it says yes.
 */
export function retryAllowed(pool: ServicePool, facts: AttemptFacts): boolean {
  return retryRefusal(pool, facts) === undefined;
}

/**
 * `retryAllowed` that says why not: `not-retryable` (the rule above), the policy's reason, or
 * `refused` from a policy that gives none. Undefined: retry (the budget was charged).
 */
export function retryRefusal(
  pool: ServicePool,
  facts: AttemptFacts,
): RetryRefusal | 'not-retryable' | 'refused' | undefined {
  const { outcome, status } = facts;
  if (outcome === 'success' || outcome === 'cancelled') return 'not-retryable';
  if (
    outcome === 'http5xx' &&
    status !== 502 &&
    status !== 503 &&
    status !== 504 &&
    !(status === 429 && facts.retry429 === true)
  )
    return 'not-retryable';
  const input = {
    method: facts.method,
    attempt: facts.attempt,
    ...(status === undefined ? {} : { status }),
    outcome,
    retryNonIdempotent: facts.retryNonIdempotent,
    bodySent: facts.bodySent,
  };
  const policy = pool.retry;
  if (policy.decide !== undefined) return policy.decide(input);
  return policy.shouldRetry(input) ? undefined : 'refused';
}

/** Whether a status is one the exchange may retry (then the policy decides). */
export function isRetryableStatus(status: number): boolean {
  return status === 502 || status === 503 || status === 504;
}
