/**
 * The forwarding exchange: the one way every handler of the data plane talks to a service.
 * Each attempt picks an upstream with the service's balancer (healthy and not ejected first,
 * untried ones first on a retry), feeds its outcome to passive outlier ejection and the
 * upstream metrics, and a failed attempt is retried by one rule set (`retryAllowed`: failures
 * and 502/503/504 only, idempotent methods unless the caller opts in, never after a streamed
 * body byte left, within attempts and the retry budget, after the service's jittered backoff).
 *
 * Two forms:
 * - `forward(ctx, pool, options)` streams: the client's request body goes upstream and the
 *   answer goes back to the client's response as it arrives (the `proxy` handler, canaries, the
 *   ambassador); `forwardUpgrade` does the same for an HTTP Upgrade;
 * - `exchange(pool, request)` buffers: it resolves with status, headers and body read under a
 *   size limit (aggregate parts, shadow traffic to diff, translation).
 */

export { type ForwardOptions, forward } from '../forward.js';
export { forwardUpgrade } from '../upgrade.js';
export {
  type ExchangeFailure,
  type ExchangeRequest,
  type ExchangeResult,
  type ExchangeSignal,
  exchange,
} from './buffered.js';
export { type FailureKind, failureOf, outcomeOf, tlsFailureOf, upstreamTlsProblem } from './outcome.js';
export { type AttemptFacts, isRetryableStatus, retryAllowed, retryRefusal } from './retry-rules.js';
