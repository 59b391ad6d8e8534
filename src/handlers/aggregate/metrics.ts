import { Counter, Histogram, LATENCY_BUCKETS, type Registry } from '../../core/metrics.js';

/**
 * Per-part metrics. Metric objects are shared by every aggregate route of a registry (a second
 * route, or a reload, reuses them); label children are bound once per part at load so the hot
 * path does no label lookups.
 */
export interface PartMetrics {
  /** Seconds a part took, by outcome. */
  observe(outcome: 'ok' | 'failed' | 'timeout' | 'cached', seconds: number): void;
  failure(reason: string): void;
}

function shared<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function partMetrics(registry: Registry, route: string, part: string): PartMetrics {
  const duration = shared(
    registry,
    'trellis_aggregate_part_duration_seconds',
    () =>
      new Histogram({
        name: 'trellis_aggregate_part_duration_seconds',
        help: 'Latency of each aggregation part (including retries), by outcome',
        labelNames: ['route', 'part', 'outcome'],
        buckets: LATENCY_BUCKETS,
        registers: [registry],
      }),
  );
  const failures = shared(
    registry,
    'trellis_aggregate_part_failures_total',
    () =>
      new Counter({
        name: 'trellis_aggregate_part_failures_total',
        help: 'Failed aggregation parts by reason (timeout, status, connect, reset, tooLarge, …)',
        labelNames: ['route', 'part', 'reason'],
        registers: [registry],
      }),
  );
  const byOutcome = {
    ok: duration.labels(route, part, 'ok'),
    failed: duration.labels(route, part, 'failed'),
    timeout: duration.labels(route, part, 'timeout'),
    cached: duration.labels(route, part, 'cached'),
  };
  return {
    observe: (outcome, seconds) => byOutcome[outcome].observe(seconds),
    failure: (reason) => failures.labels(route, part, reason).inc(),
  };
}

/** Counts composed responses, complete or not. */
export function responseMetrics(registry: Registry, route: string): (completed: boolean) => void {
  const counter = shared(
    registry,
    'trellis_aggregate_responses_total',
    () =>
      new Counter({
        name: 'trellis_aggregate_responses_total',
        help: 'Aggregated responses by completeness (completed=false: an optional part was missing)',
        labelNames: ['route', 'completed'],
        registers: [registry],
      }),
  );
  const yes = counter.labels(route, 'true');
  const no = counter.labels(route, 'false');
  return (completed) => (completed ? yes : no).inc();
}
