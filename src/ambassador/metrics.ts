import { Counter, Gauge, Histogram, LATENCY_BUCKETS, type Registry } from '../core/metrics.js';

/**
 * The ambassador's metrics, per remote service and upstream. Metric objects are shared by every
 * remote of a registry (a reload reuses them). Upstream pools add their own (ejections, health)
 * under `trellis_upstream_*`.
 */
export interface AmbassadorMetrics {
  /** One call answered to the client: status and latency (retries and backoff included). */
  call(status: number, seconds: number): void;
  /** One attempt sent to an upstream, by how it ended. */
  attempt(upstream: string, outcome: string): void;
  /** A retry decided, by the condition it answers (connect-failure, reset, timeout, 503, 429, …). */
  retry(reason: string): void;
  /** A retry that was due but refused because the retry budget is spent. */
  budgetExhausted(): void;
  /** A breaker's state now (0 closed, 1 open, 2 half-open) and the change to it. */
  breaker(upstream: string, state: 'closed' | 'open' | 'half-open'): void;
  /** A call refused by the bulkhead (no slot and a full queue). */
  bulkheadRejected(): void;
}

const STATE_VALUE = { closed: 0, open: 1, 'half-open': 2 } as const;

function shared<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** Metrics of one remote service, labels bound once. */
export function ambassadorMetrics(registry: Registry, remote: string): AmbassadorMetrics {
  const requests = shared(
    registry,
    'trellis_ambassador_requests_total',
    () =>
      new Counter({
        name: 'trellis_ambassador_requests_total',
        help: 'Calls answered to the local client, by remote service and status',
        labelNames: ['remote', 'status'],
        registers: [registry],
      }),
  );
  const duration = shared(
    registry,
    'trellis_ambassador_request_duration_seconds',
    () =>
      new Histogram({
        name: 'trellis_ambassador_request_duration_seconds',
        help: 'Latency of calls (until the response head, retries and backoff included), by remote service',
        labelNames: ['remote'],
        buckets: LATENCY_BUCKETS,
        registers: [registry],
      }),
  );
  const attempts = shared(
    registry,
    'trellis_ambassador_attempts_total',
    () =>
      new Counter({
        name: 'trellis_ambassador_attempts_total',
        help: 'Attempts sent to upstreams, by remote service, upstream and outcome',
        labelNames: ['remote', 'upstream', 'outcome'],
        registers: [registry],
      }),
  );
  const retries = shared(
    registry,
    'trellis_ambassador_retries_total',
    () =>
      new Counter({
        name: 'trellis_ambassador_retries_total',
        help: 'Retries made, by remote service and the condition they answered',
        labelNames: ['remote', 'reason'],
        registers: [registry],
      }),
  );
  const exhausted = shared(
    registry,
    'trellis_ambassador_retry_budget_exhausted_total',
    () =>
      new Counter({
        name: 'trellis_ambassador_retry_budget_exhausted_total',
        help: 'Retries that were due but refused by the retry budget, by remote service',
        labelNames: ['remote'],
        registers: [registry],
      }),
  );
  const breakerState = shared(
    registry,
    'trellis_ambassador_breaker_state',
    () =>
      new Gauge({
        name: 'trellis_ambassador_breaker_state',
        help: 'Circuit breaker state per upstream: 0 closed, 1 open, 2 half-open',
        labelNames: ['remote', 'upstream'],
        registers: [registry],
      }),
  );
  const transitions = shared(
    registry,
    'trellis_ambassador_breaker_transitions_total',
    () =>
      new Counter({
        name: 'trellis_ambassador_breaker_transitions_total',
        help: 'Circuit breaker state changes per upstream, by the state entered',
        labelNames: ['remote', 'upstream', 'state'],
        registers: [registry],
      }),
  );
  const rejected = shared(
    registry,
    'trellis_ambassador_bulkhead_rejected_total',
    () =>
      new Counter({
        name: 'trellis_ambassador_bulkhead_rejected_total',
        help: 'Calls refused by the bulkhead (every slot busy and the queue full), by remote service',
        labelNames: ['remote'],
        registers: [registry],
      }),
  );
  const latency = duration.labels(remote);
  const exhaustedChild = exhausted.labels(remote);
  const rejectedChild = rejected.labels(remote);
  // Children by label value, made once: prom-client's labels() hashes its values on every call,
  // and these two run for every call and every attempt.
  const byStatus = new Map<number, ReturnType<typeof requests.labels>>();
  const byAttempt = new Map<string, Map<string, ReturnType<typeof attempts.labels>>>();
  return {
    call(status, seconds) {
      let child = byStatus.get(status);
      if (child === undefined) {
        child = requests.labels(remote, String(status));
        byStatus.set(status, child);
      }
      child.inc();
      latency.observe(seconds);
    },
    attempt(upstream, outcome) {
      let outcomes = byAttempt.get(upstream);
      if (outcomes === undefined) {
        outcomes = new Map();
        byAttempt.set(upstream, outcomes);
      }
      let child = outcomes.get(outcome);
      if (child === undefined) {
        child = attempts.labels(remote, upstream, outcome);
        outcomes.set(outcome, child);
      }
      child.inc();
    },
    retry: (reason) => retries.labels(remote, reason).inc(),
    budgetExhausted: () => exhaustedChild.inc(),
    breaker(upstream, state) {
      breakerState.labels(remote, upstream).set(STATE_VALUE[state]);
      transitions.labels(remote, upstream, state).inc();
    },
    bulkheadRejected: () => rejectedChild.inc(),
  };
}
