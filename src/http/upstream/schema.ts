import { z } from 'zod';
import { duration } from '../../core/units.js';
import { discoverySchema } from './discovery/schema.js';
import { upstreamTlsSchema } from './tls.js';

/**
 * The schema of one `services.<name>` entry. Every option has a default (listed in
 * src/http/upstream/README.md), so `{ upstreams: [http://127.0.0.1:3001] }` is a whole service.
 */

/** `http://host:port` or `https://host:port`: an origin, nothing after it. */
const upstreamUrl = z.string().superRefine((value, ctx) => {
  const problem = originProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Why `value` is not a usable upstream origin, or undefined when it is one. */
export function originProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `invalid upstream URL ${JSON.stringify(value)}: write an origin like http://127.0.0.1:3001`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `upstream ${JSON.stringify(value)} must start with http:// or https://`;
  }
  if (url.username || url.password) {
    return `upstream ${JSON.stringify(value)} must not carry credentials: add them with a headers middleware`;
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    return `upstream ${JSON.stringify(value)} must be an origin without a path or query: write ${url.origin} and set the path with the route's rewrite`;
  }
  return undefined;
}

/** The URL of an upstream entry, written as a string or `{ url, weight }`. */
function urlOf(entry: string | { url: string }): string {
  return (typeof entry === 'string' ? entry : entry.url).toLowerCase();
}

const WEIGHT_RANGE = 'a weight is a whole number from 1 to 128';

const weightedUpstream = z.strictObject({
  url: upstreamUrl,
  /** Relative share of traffic, 1..128 (Envoy's range). */
  weight: z.number().int(WEIGHT_RANGE).min(1, WEIGHT_RANGE).max(128, WEIGHT_RANGE).default(1),
});

const hashOnSchema = z.union(
  [
    z.strictObject({ header: z.string().min(1) }),
    z.strictObject({ cookie: z.string().min(1) }),
    z.literal('clientIp'),
  ],
  { error: 'write hashOn as { header: NAME }, { cookie: NAME } or clientIp' },
);

/**
 * Which attempt outcomes a retry is allowed for. `429` only means something to a caller that
 * honours Retry-After (the ambassador); the proxy never retries a 429.
 */
export const RETRY_ON = ['connect-failure', 'reset', 'timeout', '502', '503', '504', '429'] as const;
export type RetryOn = (typeof RETRY_ON)[number];

const retryOnValue = z
  .union([z.enum(RETRY_ON), z.literal(502), z.literal(503), z.literal(504), z.literal(429)], {
    error: `a retry condition is one of ${RETRY_ON.join(', ')}`,
  })
  .transform((v) => String(v) as RetryOn);

const retrySchema = z.strictObject({
  /** Total attempts, the first included: 1 never retries. */
  attempts: z.number().int().min(1).max(10).default(2),
  backoff: z.strictObject({ base: duration().default(25), max: duration().default(250) }).prefault({}),
  budget: z
    .strictObject({
      /** Retries may not exceed this share of requests over the last 10 s. */
      ratio: z.number().min(0).max(1).default(0.2),
      /** …except that this many retries per second are always allowed. */
      minPerSecond: z.number().int().min(0).default(10),
    })
    .prefault({}),
  on: z.array(retryOnValue).default(['connect-failure', 'reset', '502', '503', '504']),
});

/** `expectStatus: 200`, `[200, 204]`, `2xx`, `[2xx, 3xx]`. */
const statusPattern = z.union([
  z.number().int().min(100).max(599),
  z.string().regex(/^[1-5]xx$/, 'expected a status code like 200 or a class like 2xx'),
]);

const healthCheckSchema = z.strictObject({
  path: z.string().startsWith('/', 'a health check path starts with /').default('/healthz'),
  interval: duration().default(10_000),
  timeout: duration().default(2_000),
  /** Consecutive passes that make an unhealthy upstream healthy again. */
  healthyThreshold: z.number().int().min(1).default(2),
  /** Consecutive failures that make a healthy upstream unhealthy. */
  unhealthyThreshold: z.number().int().min(1).default(3),
  expectStatus: z
    .union([statusPattern, z.array(statusPattern).min(1)])
    .default(['2xx', '3xx'])
    .transform((v) => (Array.isArray(v) ? v : [v])),
});

const outlierSchema = z.strictObject({
  /** Consecutive failed attempts (5xx answers and network failures alike) that eject; 0: off. */
  consecutive5xx: z.number().int().min(0).default(5),
  /** Consecutive connect failures, resets or timeouts that eject; 0: off. */
  consecutiveConnectFailures: z.number().int().min(0).default(3),
  baseEjection: duration().default(30_000),
  maxEjection: duration().default(300_000),
  /** At most this share of upstreams is ejected at once (at least one when there are two or more). */
  maxEjectedPercent: z.number().min(0).max(100).default(50),
});

const poolSchema = z.strictObject({
  /** Keep-alive connections per upstream. */
  connections: z.number().int().min(1).default(128),
  /** Idle time before a kept-alive connection is closed; keep it below the origin's own. */
  keepAliveTimeout: duration().default(4_000),
  /** Requests sent on one connection before the previous answers arrive; 1 is safe everywhere. */
  pipelining: z.number().int().min(1).max(64).default(1),
});

export const serviceSchema = z
  .strictObject({
    upstreams: z
      .array(
        z.union([upstreamUrl, weightedUpstream], {
          error: 'write an upstream as a URL (http://127.0.0.1:3001) or { url, weight }',
        }),
      )
      .default([]),
    /** Upstreams found at run time (DNS or a KeyValueStore registry), beside the static ones. */
    discovery: discoverySchema.optional(),
    balance: z.enum(['round-robin', 'least-request', 'consistent-hash']).default('round-robin'),
    /** What consistent hashing hashes; defaults to the client IP. */
    hashOn: hashOnSchema.optional(),
    /** The whole exchange, from the first attempt until the last response byte; 0: none. */
    timeout: duration().default(30_000),
    connectTimeout: duration().default(5_000),
    /** From the request sent until the response headers arrive. */
    headersTimeout: duration().default(15_000),
    retry: retrySchema.prefault({}),
    healthCheck: healthCheckSchema.optional(),
    outlier: outlierSchema.prefault({}),
    pool: poolSchema.prefault({}),
    /** TLS origination to the https:// upstreams: custom CA, SNI, client certificate (mTLS). */
    tls: upstreamTlsSchema.optional(),
  })
  .superRefine((def, ctx) => {
    if (def.upstreams.length === 0 && def.discovery === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['upstreams'],
        message: 'a service needs at least one upstream: list upstreams:, or find them with discovery:',
      });
    }
    if (
      def.tls !== undefined &&
      !def.upstreams.some((u) => urlOf(u).startsWith('https:')) &&
      def.discovery?.dns?.scheme !== 'https' &&
      def.discovery?.registry === undefined
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls'],
        message:
          'tls: applies to https:// upstreams, and every upstream of this service is http://: write https:// upstreams (or discovery.dns.scheme: https), or remove tls:',
      });
    }
    if (def.hashOn !== undefined && def.balance !== 'consistent-hash') {
      ctx.addIssue({
        code: 'custom',
        path: ['hashOn'],
        message: 'hashOn applies only to balance: consistent-hash: set the balance, or remove hashOn',
      });
    }
    if (def.retry.backoff.max < def.retry.backoff.base) {
      ctx.addIssue({
        code: 'custom',
        path: ['retry', 'backoff', 'max'],
        message: 'retry.backoff.max must be at least retry.backoff.base',
      });
    }
    if (def.outlier.maxEjection < def.outlier.baseEjection) {
      ctx.addIssue({
        code: 'custom',
        path: ['outlier', 'maxEjection'],
        message: 'outlier.maxEjection must be at least outlier.baseEjection',
      });
    }
  });

/** A validated service definition, every default filled in. */
export type ServiceDef = z.output<typeof serviceSchema>;
/** A service definition as written in a file. */
export type ServiceInput = z.input<typeof serviceSchema>;
export type HashOn = NonNullable<ServiceDef['hashOn']>;
export type HealthCheckDef = NonNullable<ServiceDef['healthCheck']>;
export type OutlierDef = ServiceDef['outlier'];
export type RetryDef = ServiceDef['retry'];
export type { UpstreamTlsDef } from './tls.js';
