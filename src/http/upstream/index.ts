export * from './balancers/index.js';
export * from './discovery/index.js';
export { cookieValue, hashKeyOf } from './hash-key.js';
export { HealthChecker, statusMatcher } from './health-check.js';
export { type MetricsSource, type UpstreamMetrics, upstreamMetrics } from './metrics.js';
export { OutlierDetector } from './outlier.js';
export { createServicePool, type ServicePoolDeps, UpstreamPool } from './pool.js';
export { IDEMPOTENT, RetryBudget, type RetryRefusal, ServiceRetryPolicy } from './retry.js';
export * from './schema.js';
export {
  loadUpstreamTls,
  readUpstreamTls,
  serviceTlsIssues,
  tlsConnectOptions,
  tlsFailureReason,
  type UpstreamTlsFile,
  type UpstreamTlsMaterial,
  type UpstreamTlsProblem,
  upstreamTlsFiles,
  upstreamTlsSchema,
} from './tls.js';
export type * from './types.js';
export { type Clock, UpstreamNode } from './upstream.js';
