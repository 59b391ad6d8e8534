import type { AttemptOutcome, ServicePool } from '../upstream/types.js';

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
}

/**
 * The one retry rule of the data plane, used by every form of the forwarding exchange (the
 * proxy's stream, aggregate parts, and the handlers built on them):
 * - only failures are retried: connect failures, resets, timeouts, and answers 502/503/504
 *   (never a 500, which is the origin's own verdict, nor a cancellation by the caller);
 * - then the service's policy decides: attempts left, the method idempotent (RFC 9110 9.2.2)
 *   or the caller opted in, no streamed body byte sent, the condition in `retry.on`, and the
 *   retry budget, which it charges when it says yes.
 */
export function retryAllowed(pool: ServicePool, facts: AttemptFacts): boolean {
  const { outcome, status } = facts;
  if (outcome === 'success' || outcome === 'cancelled') return false;
  if (outcome === 'http5xx' && status !== 502 && status !== 503 && status !== 504) return false;
  return pool.retry.shouldRetry({
    method: facts.method,
    attempt: facts.attempt,
    ...(status === undefined ? {} : { status }),
    outcome,
    retryNonIdempotent: facts.retryNonIdempotent,
    bodySent: facts.bodySent,
  });
}

/** Whether a status is one the exchange may retry (then the policy decides). */
export function isRetryableStatus(status: number): boolean {
  return status === 502 || status === 503 || status === 504;
}
