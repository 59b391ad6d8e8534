import { collectDefaultMetrics, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** A fresh registry (never the global one, so two gateways in one process do not collide). */
export function createMetricsRegistry(options: { defaults?: boolean; prefix?: string } = {}): Registry {
  const registry = new Registry();
  if (options.defaults) collectDefaultMetrics({ register: registry, prefix: options.prefix ?? 'trellis_' });
  return registry;
}

/** Latency buckets in seconds, from 0.5 ms to 10 s: proxies live in the low milliseconds. */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
