import type { Metric, Registry } from 'prom-client';
import { LATENCY_BUCKETS } from '../core/metrics.js';

/**
 * Per-route request counts and latency buckets, kept as plain numbers on the hot path and turned
 * into Prometheus samples only when /metrics is scraped. A labelled prom-client Histogram
 * observe plus Counter inc costs about a microsecond per request (it hashes the labels each
 * time); this costs a bucket search and three additions. Exposed through prom-client's registry
 * as two ordinary metric families, so the text format and every other metric stay prom-client's.
 */
export class RouteStats implements LatencyCounts {
  readonly frontend: string;
  readonly route: string;
  readonly service: string;
  /** Non-cumulative counts per latency bucket; the last slot is +Inf. */
  readonly buckets = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;
  /** Requests by status code. */
  readonly codes = new Map<number, number>();

  constructor(frontend: string, route: string, service: string) {
    this.frontend = frontend;
    this.route = route;
    this.service = service;
  }

  /** Counts one finished request. */
  record(status: number, seconds: number): void {
    recordLatency(this, seconds);
    this.codes.set(status, (this.codes.get(status) ?? 0) + 1);
  }
}

/** Latency buckets kept as plain numbers (non-cumulative; the last slot is +Inf). */
export interface LatencyCounts {
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

/** Counts one latency in `c`: a bucket search and three additions. */
export function recordLatency(c: LatencyCounts, seconds: number): void {
  let i = 0;
  while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
  c.buckets[i]!++;
  c.sum += seconds;
  c.count++;
}

/** Pushes `c` as Prometheus histogram samples of `name` (cumulative buckets, sum, count). */
export function pushHistogram(
  values: unknown[],
  name: string,
  c: LatencyCounts,
  labels: Record<string, string>,
): void {
  let cumulative = 0;
  LATENCY_BUCKETS.forEach((le, i) => {
    cumulative += c.buckets[i]!;
    values.push({ metricName: `${name}_bucket`, value: cumulative, labels: { le, ...labels } });
  });
  values.push({ metricName: `${name}_bucket`, value: c.count, labels: { le: '+Inf', ...labels } });
  values.push({ metricName: `${name}_sum`, value: c.sum, labels });
  values.push({ metricName: `${name}_count`, value: c.count, labels });
}

/** Registers a metric family whose samples `values()` computes at scrape time. */
export function registerFamily(
  registry: Registry,
  name: string,
  help: string,
  type: 'counter' | 'histogram',
  values: () => unknown[],
): void {
  // prom-client accepts any object of this shape; its Metric type names its own classes only.
  registry.registerMetric({
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
    reset() {},
  } as unknown as Metric<string>);
}

/** The route statistics of one registry; they outlive reloads so counters never go backwards. */
export interface RouteStatsTable {
  /** The statistics for these labels, created on first use. */
  get(frontend: string, route: string, service: string): RouteStats;
}

/**
 * Registers `trellis_gateway_requests_total` and `trellis_gateway_request_duration_seconds` in
 * `registry`, read from the returned table at scrape time.
 */
export function routeStatsMetrics(registry: Registry): RouteStatsTable {
  const all = new Map<string, RouteStats>();
  const labelsOf = (s: RouteStats) => ({ frontend: s.frontend, route: s.route, service: s.service });
  const family = (name: string, help: string, type: 'counter' | 'histogram', values: () => unknown[]) =>
    registerFamily(registry, name, help, type, values);

  family(
    'trellis_gateway_requests_total',
    'Requests answered, by frontend, route, service and status code.',
    'counter',
    () => {
      const values: unknown[] = [];
      for (const s of all.values()) {
        for (const [code, value] of s.codes)
          values.push({ value, labels: { ...labelsOf(s), code: String(code) } });
      }
      return values;
    },
  );
  family(
    'trellis_gateway_request_duration_seconds',
    'Time from request arrival until the response ended.',
    'histogram',
    () => {
      const values: unknown[] = [];
      for (const s of all.values())
        pushHistogram(values, 'trellis_gateway_request_duration_seconds', s, labelsOf(s));
      return values;
    },
  );

  return {
    get(frontend, route, service) {
      const key = `${frontend}\u0000${route}\u0000${service}`;
      let s = all.get(key);
      if (s === undefined) {
        s = new RouteStats(frontend, route, service);
        all.set(key, s);
      }
      return s;
    },
  };
}
