import { Counter, Gauge, type Registry } from 'prom-client';
import { type RouteStatsTable, routeStatsMetrics } from './route-stats.js';

/**
 * The runtime's own metrics in one registry (upstream health metrics come from http/upstream).
 * The names keep the `trellis_gateway_` prefix the dashboards and alerts already use.
 */
export interface RuntimeMetrics {
  /** Requests and latency per route (exposed as trellis_gateway_requests_total / _request_duration_seconds). */
  routes: RouteStatsTable;
  errors: Counter<'frontend' | 'route' | 'service' | 'error'>;
  reloads: Counter<'result'>;
  configVersion: Gauge;
  /** Sources of the open-connections gauge, read at scrape time. */
  connectionSources: Set<() => number>;
}

/** The gateway's name for the runtime metrics. */
export type GatewayMetrics = RuntimeMetrics;

const byRegistry = new WeakMap<Registry, RuntimeMetrics>();

/** The gateway metrics of `registry`, created once: generations come and go, the registry stays. */
export function runtimeMetrics(registry: Registry): RuntimeMetrics {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const connectionSources = new Set<() => number>();
  const metrics: RuntimeMetrics = {
    routes: routeStatsMetrics(registry),
    errors: new Counter({
      name: 'trellis_gateway_errors_total',
      help: 'Requests that ended in an error: a TRELLIS_E_* answer from the gateway or a 5xx from the service.',
      labelNames: ['frontend', 'route', 'service', 'error'] as const,
      registers: [registry],
    }),
    reloads: new Counter({
      name: 'trellis_gateway_reloads_total',
      help: 'Configuration reloads, by result (applied or rejected).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    configVersion: new Gauge({
      name: 'trellis_gateway_config_version',
      help: 'Version number of the active configuration (1 at start, +1 per applied reload).',
      registers: [registry],
    }),
    connectionSources,
  };
  new Gauge({
    name: 'trellis_gateway_open_connections',
    help: 'Open client connections on the gateway listeners.',
    registers: [registry],
    collect() {
      let n = 0;
      for (const read of connectionSources) n += read();
      this.set(n);
    },
  });
  byRegistry.set(registry, metrics);
  return metrics;
}
