import type { Metric, Registry } from 'prom-client';
import { LATENCY_BUCKETS } from '../core/metrics.js';

/**
 * Per-route request counts and latency buckets, kept as plain numbers on the hot path and turned
 * into Prometheus samples only when /metrics is scraped. A labelled prom-client Histogram
 * observe plus Counter inc costs about a microsecond per request (it hashes the labels each
 * time); this costs a bucket search and three additions. Exposed through prom-client's registry
 * as two ordinary metric families, so the text format and every other metric stay prom-client's.
 */
export class RouteStats {
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
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    this.buckets[i]!++;
    this.sum += seconds;
    this.count++;
    this.codes.set(status, (this.codes.get(status) ?? 0) + 1);
  }
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
    // prom-client accepts any object of this shape; its Metric type names its own classes only.
    registry.registerMetric({
      name,
      help,
      type,
      aggregator: 'sum',
      get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
      reset() {},
    } as unknown as Metric<string>);

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
      const name = 'trellis_gateway_request_duration_seconds';
      const values: unknown[] = [];
      for (const s of all.values()) {
        const labels = labelsOf(s);
        let cumulative = 0;
        LATENCY_BUCKETS.forEach((le, i) => {
          cumulative += s.buckets[i]!;
          values.push({ metricName: `${name}_bucket`, value: cumulative, labels: { le, ...labels } });
        });
        values.push({ metricName: `${name}_bucket`, value: s.count, labels: { le: '+Inf', ...labels } });
        values.push({ metricName: `${name}_sum`, value: s.sum, labels });
        values.push({ metricName: `${name}_count`, value: s.count, labels });
      }
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
