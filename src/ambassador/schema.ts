import { z } from 'zod';
import { duration, size } from '../core/units.js';
import { accessLogSchema, adminSchema } from '../gateway/schema.js';
import { type ListenConfig, listenSchema } from '../http/listener.js';
import { registryStoreProblem, serviceSchema } from '../http/upstream/index.js';
import { storeUrlSchema } from '../runtime/stores.js';
import { credentialsSchema } from './credentials.js';
import { hedgeSchema, unsafeHedgeMethods } from './hedge.js';

/**
 * The ambassador file: one entry under `remotes:` per remote service the local client calls.
 * Each remote has its own loopback listener (`listen:`) or shares the top-level one and is
 * chosen by the request's Host (`hosts:`). `service:` is the shared upstream pool definition
 * (upstreams, balance, retry conditions and budget, outlier ejection), the policies around it
 * are the ambassador's.
 */

const HOST_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

/** A Unix socket's file mode, in octal as a string (YAML reads an unquoted 0660 as decimal 660). */
const socketModeSchema = z
  .string({
    error: "write the mode in quotes, like mode: '0660' (YAML reads 0660 unquoted as the decimal 660)",
  })
  .regex(/^0?[0-7]{3}$/, "a mode is three octal digits, like '0660'")
  .transform((m) => Number.parseInt(m, 8));

const SOCKET_PATH = /^\/./;
const SOCKET_PATH_HINT = 'a Unix socket path is absolute, like unix:/run/trellis/payments.sock';

/** `{ path, mode }` and the listener's limits (`maxHeaderSize`, timeouts…); no TLS on a local socket. */
const unixObjectSchema = listenSchema.omit({ host: true, port: true, tls: true }).extend({
  /** Absolute path of the socket file. */
  path: z.string().regex(SOCKET_PATH, SOCKET_PATH_HINT),
  /** Who may connect: the socket file's mode. */
  mode: socketModeSchema.default(0o660),
});

const unixStringSchema = z
  .string()
  .regex(/^unix:\/./, `write unix:/absolute/path.sock, or { port }: ${SOCKET_PATH_HINT}`)
  .transform((s) => unixObjectSchema.parse({ path: s.slice('unix:'.length) }));

const tcpListenSchema = listenSchema.extend({ host: z.string().default('127.0.0.1') });

type AmbassadorListen = z.output<typeof unixObjectSchema> | z.output<typeof tcpListenSchema>;

/**
 * An ambassador listener: loopback host and port (127.0.0.1 by default), or a Unix socket as
 * `unix:/path.sock` or `{ path, mode }` (mode 0660 by default). Chosen by shape rather than a zod
 * union, so a mistake is reported by the form it was meant as (a union says only "invalid input").
 */
const ambassadorListenSchema = z.unknown().transform((value, ctx): AmbassadorListen => {
  const schema =
    typeof value === 'string'
      ? unixStringSchema
      : typeof value === 'object' && value !== null && 'path' in value
        ? unixObjectSchema
        : tcpListenSchema;
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  for (const issue of r.error.issues)
    ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  return z.NEVER;
});

/** A listener's block as the shared runtime takes it (a Unix socket in `socket`). */
export function listenConfigOf(listen: AmbassadorListen): ListenConfig {
  if (!('path' in listen)) return listen;
  const { path, mode, ...limits } = listen;
  return { ...limits, host: '127.0.0.1', port: 0, socket: { path, mode } };
}

/** Per-upstream circuit breaker (cockatiel's, opened by either condition). */
export const breakerSchema = z.strictObject({
  /** Consecutive failed attempts that open the breaker; 0: this condition is off. */
  consecutiveFailures: z.number().int().min(0).default(5),
  /** Share of failed attempts over `window` above which the breaker opens (below 1); 0: this condition is off. */
  failureRatio: z.number().min(0).lt(1, 'failureRatio is a share below 1, like 0.5').default(0.5),
  /** The ratio is only judged once the window holds this many attempts. */
  minimumAttempts: z.number().int().min(1).default(20),
  /** The sliding window of the failure ratio. */
  window: duration().default(10_000),
  /** How long an open breaker refuses before one probe (half-open) is let through. */
  halfOpenAfter: duration().default(5_000),
});

/** Concurrency cap with a bounded queue (cockatiel's bulkhead). */
export const bulkheadSchema = z.strictObject({
  /** Calls in flight to this remote at once. */
  maxConcurrent: z.number().int().min(1).default(256),
  /** Calls waiting for a slot; more are refused with 503 at once. */
  maxQueue: z.number().int().min(0).default(256),
});

/** One remote service. */
export const remoteSchema = z
  .strictObject({
    /** Its own listener (host defaults to 127.0.0.1): the client calls http://127.0.0.1:PORT/…; or `unix:/path.sock`. */
    listen: ambassadorListenSchema.optional(),
    /** Host names selecting this remote on the shared top-level `listen:` (host-based routing). */
    hosts: z
      .array(z.string().regex(HOST_RE, 'write a host name like payments.internal (no port)'))
      .min(1)
      .optional(),
    /** The upstream pool: upstreams, balance, retry (attempts, conditions, budget, backoff), outlier ejection. */
    service: serviceSchema,
    /** Total deadline of a call, from its arrival: no attempt starts after it; 0: none. */
    timeout: duration().default(10_000),
    /** Deadline of one attempt until its response headers; 0: the total deadline only. */
    perTryTimeout: duration().default(2_000),
    /** Header carrying the time left (ms) to the upstream on each attempt; '' sends none. */
    deadlineHeader: z.string().default('x-trellis-deadline-ms'),
    /** Retry non-idempotent methods (POST, PATCH) too: only when the remote de-duplicates. */
    retryNonIdempotent: z.boolean().default(false),
    /** Largest request body kept to replay on a retry; a larger one is refused with 413. */
    maxBodySize: size().default(1024 * 1024),
    /** Headers (API keys) and OAuth2 client-credentials tokens added to every call. */
    credentials: credentialsSchema.optional(),
    breaker: breakerSchema.prefault({}),
    bulkhead: bulkheadSchema.prefault({}),
    /** Hedging of slow reads: another attempt to another upstream after a delay (off unless set). */
    hedge: hedgeSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.listen === undefined && r.hosts === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'a remote needs its own listen: { port }, or hosts: to be chosen on the shared listen:',
      });
    }
    const unsafe = r.hedge === undefined ? [] : unsafeHedgeMethods(r.hedge);
    if (unsafe.length > 0 && !r.retryNonIdempotent) {
      ctx.addIssue({
        code: 'custom',
        path: ['hedge', 'methods'],
        message: `${unsafe.join(', ')} is not idempotent: hedging would send it twice; set retryNonIdempotent: true only if the remote de-duplicates`,
      });
    }
    if (r.timeout > 0 && r.perTryTimeout > r.timeout) {
      ctx.addIssue({
        code: 'custom',
        path: ['perTryTimeout'],
        message: 'perTryTimeout must not be longer than timeout',
      });
    }
  });

/** The whole ambassador file. */
export const ambassadorSchema = z
  .strictObject({
    /** The shared listener for remotes chosen by `hosts:` (loopback by default, or a Unix socket). */
    listen: ambassadorListenSchema.optional(),
    admin: adminSchema.prefault({}),
    accessLog: accessLogSchema.default(true),
    drainTimeout: duration().default(10_000),
    stores: z.record(z.string(), storeUrlSchema).default({}),
    remotes: z.record(
      z.string().regex(/^[A-Za-z0-9_-]+$/, 'a remote name is letters, digits, - and _'),
      remoteSchema,
    ),
  })
  .superRefine((cfg, ctx) => {
    if (Object.keys(cfg.remotes).length === 0) {
      ctx.addIssue({ code: 'custom', path: ['remotes'], message: 'name at least one remote service' });
    }
    if (cfg.listen !== undefined && cfg.remotes.main !== undefined && cfg.remotes.main.listen !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['remotes', 'main'],
        message: 'the shared listener is called main: give this remote another name',
      });
    }
    for (const [name, remote] of Object.entries(cfg.remotes)) {
      const store = remote.service.discovery?.registry?.store;
      const message = store === undefined ? undefined : registryStoreProblem(store, cfg.stores);
      if (message !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['remotes', name, 'service', 'discovery', 'registry', 'store'],
          message,
        });
      }
    }
    const hosted = Object.entries(cfg.remotes).filter(([, r]) => r.listen === undefined);
    if (hosted.length > 0 && cfg.listen === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['remotes', hosted[0]![0]],
        message: 'this remote is chosen by hosts: but the file has no top-level listen: to share',
      });
    }
  });

export type AmbassadorConfig = z.output<typeof ambassadorSchema>;
export type RemoteConfig = AmbassadorConfig['remotes'][string];
export type BreakerConfig = RemoteConfig['breaker'];
