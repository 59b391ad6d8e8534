import { Counter, Gauge, LATENCY_BUCKETS, type Registry } from '../core/metrics.js';
import { type LatencyCounts, pushHistogram, recordLatency, registerFamily } from '../runtime/route-stats.js';

const DURATION = 'trellis_ambassador_request_duration_seconds';

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
  breaker(upstream: string, state: BreakerState): void;
  /** The upstream's breaker was dropped (discovery took it away): its series go with it. */
  breakerRemoved(upstream: string): void;
  /** A call refused by the bulkhead (no slot and a full queue). */
  bulkheadRejected(): void;
  /** A hedge sent, one that won the race, or one due but refused by the retry budget. */
  hedge(event: HedgeEvent): void;
  /** The remote's hedges so far (this process, across reloads), for the admin API and the panel. */
  hedges(): Readonly<HedgeCounts>;
}

export type HedgeEvent = 'sent' | 'won' | 'budget';
export type HedgeCounts = Record<HedgeEvent, number>;

const STATE_VALUE = { closed: 0, open: 1, 'half-open': 2 } as const;
type BreakerState = keyof typeof STATE_VALUE;
const BREAKER_STATES = Object.keys(STATE_VALUE) as BreakerState[];

function shared<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/**
 * The per-call and per-attempt counts of one remote, kept in plain numbers and added to their
 * prom-client counters when the registry is scraped: an `inc` hashes its label values on every
 * call, a visible share of a forwarded call's CPU time. One per registry and remote name, so a
 * reload's new handler keeps counting into the same one.
 */
class PendingCounts implements LatencyCounts {
  readonly byStatus = new Map<number, number>();
  /** The call latency histogram, as plain numbers (read at scrape, see route-stats.ts). */
  readonly buckets = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;
  readonly byAttempt = new Map<string, Map<string, number>>();
  /** Also counted here, as plain numbers: the admin view reads them synchronously. */
  readonly hedges: HedgeCounts = { sent: 0, won: 0, budget: 0 };

  constructor(
    private readonly remote: string,
    private readonly requests: Counter<string>,
    private readonly attempts: Counter<string>,
  ) {}

  flush(): void {
    for (const [status, n] of this.byStatus) {
      if (n > 0) this.requests.labels(this.remote, String(status)).inc(n);
      this.byStatus.set(status, 0);
    }
    for (const [upstream, outcomes] of this.byAttempt) {
      for (const [outcome, n] of outcomes) {
        if (n > 0) this.attempts.labels(this.remote, upstream, outcome).inc(n);
        outcomes.set(outcome, 0);
      }
    }
  }
}

const pendingOf = new WeakMap<Registry, Map<string, PendingCounts>>();

/** Adds every remote's pending counts of `registry` (a counter's `collect`, run on scrape). */
function flushPending(registry: Registry): void {
  for (const p of pendingOf.get(registry)?.values() ?? []) p.flush();
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
        collect: () => flushPending(registry),
      }),
  );
  if (registry.getSingleMetric(DURATION) === undefined) {
    // Plain-number buckets rather than a prom-client Histogram: its labelled observe was the
    // largest share of the ambassador's own CPU time per call.
    registerFamily(
      registry,
      DURATION,
      'Latency of calls (until the response head, retries and backoff included), by remote service',
      'histogram',
      () => {
        const values: unknown[] = [];
        for (const [remote, p] of pendingOf.get(registry) ?? [])
          pushHistogram(values, DURATION, p, { remote });
        return values;
      },
    );
  }
  const attempts = shared(
    registry,
    'trellis_ambassador_attempts_total',
    () =>
      new Counter({
        name: 'trellis_ambassador_attempts_total',
        help: 'Attempts sent to upstreams, by remote service, upstream and outcome',
        labelNames: ['remote', 'upstream', 'outcome'],
        registers: [registry],
        collect: () => flushPending(registry),
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
  const hedges = shared(
    registry,
    'trellis_ambassador_hedges_total',
    () =>
      new Counter({
        name: 'trellis_ambassador_hedges_total',
        help: 'Hedged attempts by remote service: sent, won (answered first), budget (due but refused by the retry budget)',
        labelNames: ['remote', 'outcome'],
        registers: [registry],
      }),
  );
  const exhaustedChild = exhausted.labels(remote);
  const rejectedChild = rejected.labels(remote);
  let remotes = pendingOf.get(registry);
  if (remotes === undefined) {
    remotes = new Map();
    pendingOf.set(registry, remotes);
  }
  let pending = remotes.get(remote);
  if (pending === undefined) {
    pending = new PendingCounts(remote, requests, attempts);
    remotes.set(remote, pending);
  }
  const { byStatus, byAttempt } = pending;
  const latencies = pending;
  return {
    call(status, seconds) {
      byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
      recordLatency(latencies, seconds);
    },
    attempt(upstream, outcome) {
      let outcomes = byAttempt.get(upstream);
      if (outcomes === undefined) {
        outcomes = new Map();
        byAttempt.set(upstream, outcomes);
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    },
    retry: (reason) => retries.labels(remote, reason).inc(),
    budgetExhausted: () => exhaustedChild.inc(),
    breaker(upstream, state) {
      breakerState.labels(remote, upstream).set(STATE_VALUE[state]);
      transitions.labels(remote, upstream, state).inc();
    },
    breakerRemoved(upstream) {
      // An upstream gone for good would otherwise be scraped (and alerted on) forever.
      breakerState.remove(remote, upstream);
      for (const state of BREAKER_STATES) transitions.remove(remote, upstream, state);
    },
    bulkheadRejected: () => rejectedChild.inc(),
    hedge(event) {
      pending.hedges[event]++;
      hedges.labels(remote, event).inc();
    },
    hedges: () => pending.hedges,
  };
}
