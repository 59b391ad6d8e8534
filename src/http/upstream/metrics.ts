import { Counter, Gauge, type Registry } from 'prom-client';
import type { UpstreamNode } from './upstream.js';

/** What the metrics read from a live pool at scrape time. */
export interface MetricsSource {
  readonly name: string;
  readonly nodes: readonly UpstreamNode[];
  /** When the service's client certificate and CA bundle expire (ms since the epoch). */
  readonly tlsExpiries?: readonly { field: string; notAfter: number }[];
}

/** The upstream metrics of one registry, shared by every pool registered in it. */
export interface UpstreamMetrics {
  readonly pools: Set<MetricsSource>;
  readonly ejections: Counter<'service' | 'upstream'>;
  readonly retries: Counter<'service'>;
  readonly retryBudgetExhausted: Counter<'service'>;
  readonly discoveryUpdates: Counter<'service' | 'source'>;
  readonly discoveryFailures: Counter<'service' | 'source'>;
}

const byRegistry = new WeakMap<Registry, UpstreamMetrics>();

/**
 * The upstream metrics in `registry`, created on first use. Pools come and go with reloads while
 * the registry lives on, so the metrics are registered once per registry and the gauges read
 * whichever pools are alive when Prometheus scrapes.
 */
export function upstreamMetrics(registry: Registry): UpstreamMetrics {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const pools = new Set<MetricsSource>();
  const gauge = (name: string, help: string, read: (u: UpstreamNode) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['service', 'upstream'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const pool of pools) {
          for (const u of pool.nodes) this.set({ service: pool.name, upstream: u.id }, read(u));
        }
      },
    });
  gauge(
    'trellis_upstream_healthy',
    'Whether the upstream passes its active health checks (1) or not (0).',
    (u) => (u.healthy ? 1 : 0),
  );
  gauge('trellis_upstream_ejected', 'Whether passive outlier detection has the upstream ejected now.', (u) =>
    u.ejected ? 1 : 0,
  );
  gauge('trellis_upstream_in_flight', 'Requests in flight to the upstream.', (u) => u.inFlight);
  new Gauge({
    name: 'trellis_upstream_tls_expiry_seconds',
    help: "Seconds until a service's tls.cert (client certificate) or tls.ca (its first certificate to go) expires; negative once expired.",
    labelNames: ['service', 'field'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const now = Date.now();
      for (const pool of pools) {
        for (const e of pool.tlsExpiries ?? [])
          this.set({ service: pool.name, field: e.field }, Math.round((e.notAfter - now) / 1000));
      }
    },
  });
  const metrics: UpstreamMetrics = {
    pools,
    ejections: new Counter({
      name: 'trellis_upstream_ejections_total',
      help: 'Ejections by passive outlier detection.',
      labelNames: ['service', 'upstream'] as const,
      registers: [registry],
    }),
    retries: new Counter({
      name: 'trellis_upstream_retries_total',
      help: 'Retries the retry policy allowed.',
      labelNames: ['service'] as const,
      registers: [registry],
    }),
    retryBudgetExhausted: new Counter({
      name: 'trellis_upstream_retry_budget_exhausted_total',
      help: 'Retries refused because the retry budget was spent.',
      labelNames: ['service'] as const,
      registers: [registry],
    }),
    discoveryUpdates: new Counter({
      name: 'trellis_upstream_discovery_updates_total',
      help: 'Changes of the upstream set a discovery source handed to the pool (a new DNS answer, a registry change).',
      labelNames: ['service', 'source'] as const,
      registers: [registry],
    }),
    discoveryFailures: new Counter({
      name: 'trellis_upstream_discovery_failures_total',
      help: 'Failed DNS resolutions and broken registry watches (the last good set stays).',
      labelNames: ['service', 'source'] as const,
      registers: [registry],
    }),
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
