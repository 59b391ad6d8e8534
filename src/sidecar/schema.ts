import { z } from 'zod';
import { duration } from '../core/units.js';
import { accessLogSchema, adminSchema, middlewareEntrySchema } from '../gateway/schema.js';
import { listenSchema } from '../http/listener.js';
import type { TypeRegistry } from '../runtime/registry.js';
import { storeUrlSchema } from '../runtime/stores.js';

/**
 * The sidecar file: the app it supervises (`app:`), the public inbound listener (`listen:`, with
 * the gateway's `middlewares:`), the platform API on localhost (`api:`) and the building blocks
 * behind it, each chosen by URL (SQLite by default).
 */

const HEALTH_PATH_RE = /^\/[^\s#]*$/;

/** The supervised app. */
export const appSchema = z.strictObject({
  /** Shown in logs (and each JSON log line of the app); defaults to the command's name. */
  name: z.string().min(1).optional(),
  /** The port the app listens on (given to it as PORT). */
  port: z.number().int().min(1).max(65535),
  /** An HTTP path that answers 2xx when the app is ready; absent: the port listening is enough. */
  healthPath: z.string().regex(HEALTH_PATH_RE, 'a health path starts with /').optional(),
  /** How long the app may take to become healthy after a start before it counts as failed. */
  startTimeout: duration().default(30_000),
  /** How often health is checked while the app runs. */
  healthInterval: duration().default(1_000),
  /** Restart policy: always, on-failure (a non-zero exit), never. */
  restart: z.enum(['always', 'on-failure', 'never']).default('on-failure'),
  /** Restart backoff: doubles from `initial` to `max`. */
  backoff: z.strictObject({ initial: duration().default(100), max: duration().default(10_000) }).prefault({}),
  /** More restarts than this inside `crashLoopWindow` is a crash loop: the sidecar exits. */
  maxRestarts: z.number().int().min(0).default(10),
  crashLoopWindow: duration().default(60_000),
  /** After SIGTERM, how long the app may take to exit before SIGKILL. */
  stopTimeout: duration().default(10_000),
  /** `inherit`: the app's output as it is; `json`: one JSON log line per output line, with its name. */
  logs: z.enum(['inherit', 'json']).default('inherit'),
  /** Extra environment for the app. */
  env: z.record(z.string(), z.string()).default({}),
});

/** A push subscription: messages of `topic` POSTed to the app's `path`, acked on its 2xx. */
export const subscriptionSchema = z.strictObject({
  topic: z.string().min(1),
  /** The app's endpoint (on its own port). */
  path: z.string().regex(HEALTH_PATH_RE, 'a path starts with /'),
  /** Consumer group (default: the app's name): instances of one app share the work. */
  group: z.string().min(1).optional(),
  /** After this many deliveries the message goes to `<topic>.dlq`. */
  maxDeliveries: z.number().int().min(1).default(5),
  /** How long the app may take to answer one delivery. */
  timeout: duration().default(10_000),
  /** Deliveries in flight at once. */
  concurrency: z.number().int().min(1).max(256).default(1),
  /** Delay before each redelivery (the last repeats). */
  backoff: z.array(duration()).min(1).default([100, 500, 2_000]),
});

/** The configuration document the app may read and watch. */
export const configSourceSchema = z.strictObject({
  /** A `trellis config serve` URL or a store URL. */
  source: z.string().min(1),
  /** Read token for a config server (use ${ENV}). */
  token: z.string().optional(),
  prefix: z.string().optional(),
  label: z.string().optional(),
  /** Last-known-good copy on disk, served when the store is unreachable. */
  cacheFile: z.string().optional(),
});

/** The whole sidecar file, for the middleware types of `types`. */
export function sidecarSchema(types: TypeRegistry) {
  return z
    .strictObject({
      app: appSchema,
      /** The public inbound listener (opened only once the app is healthy). */
      listen: listenSchema.prefault({ port: 8080 }),
      admin: adminSchema.prefault({ port: 9902 }),
      /** The platform API the app calls (keep it on loopback). */
      api: z
        .strictObject({
          host: z.string().default('127.0.0.1'),
          port: z.number().int().min(0).max(65535).default(3500),
          /** Deadline of one store operation: past it the API answers 503 instead of hanging. */
          storeTimeout: duration().default(5_000),
        })
        .prefault({}),
      trustedProxies: z.array(z.string()).default([]),
      encodedSlashes: z.enum(['reject', 'decode', 'keep']).default('reject'),
      accessLog: accessLogSchema.default(true),
      /** How long in-flight inbound requests may take to finish on shutdown. */
      drainTimeout: duration().default(10_000),
      /** Inbound proxy timeout to the app. */
      timeout: duration().default(30_000),
      stores: z.record(z.string(), storeUrlSchema).default({}),
      middlewares: z.record(z.string(), middlewareEntrySchema(types)).default({}),
      /** Names from `middlewares:` applied to every inbound request, in this order. */
      inbound: z.strictObject({ middlewares: z.array(z.string()).default([]) }).prefault({}),
      /** Backends of the platform API, by URL (default: one SQLite file beside the sidecar file). */
      state: storeUrlSchema.optional(),
      pubsub: z
        .strictObject({
          url: storeUrlSchema.optional(),
          subscriptions: z.array(subscriptionSchema).default([]),
        })
        .prefault({}),
      locks: storeUrlSchema.optional(),
      config: configSourceSchema.optional(),
      /** Secrets the app may read by name: `secret://env/NAME` or `secret://file/PATH`. */
      secrets: z
        .record(
          z.string().regex(/^[A-Za-z0-9_.-]+$/, 'a secret name is letters, digits, _ . -'),
          z.string().regex(/^secret:\/\/(env|file)\/.+$/, 'write secret://env/NAME or secret://file/PATH'),
        )
        .default({}),
    })
    .superRefine((cfg, ctx) => {
      cfg.inbound.middlewares.forEach((m, i) => {
        if (cfg.middlewares[m] === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['inbound', 'middlewares', i],
            message: `unknown middleware "${m}": define it under middlewares:`,
          });
        }
      });
      if (cfg.listen.port !== 0 && cfg.listen.port === cfg.app.port) {
        ctx.addIssue({
          code: 'custom',
          path: ['listen', 'port'],
          message: 'the inbound port must differ from app.port',
        });
      }
    });
}

export type SidecarConfig = z.output<ReturnType<typeof sidecarSchema>>;
export type AppConfig = SidecarConfig['app'];
export type SubscriptionConfig = SidecarConfig['pubsub']['subscriptions'][number];
