import { z } from 'zod';
import { formatPath } from '../core/config.js';
import { didYouMean } from '../core/suggest.js';
import { duration } from '../core/units.js';
import { listenSchema } from '../http/listener.js';
import { registryStoreProblem, serviceSchema } from '../http/upstream/index.js';
import type { TypeRegistry } from '../runtime/registry.js';
import { checkPathPattern } from '../runtime/router.js';
import { storeUrlSchema } from '../runtime/stores.js';
import { gatewayTypes } from './types.js';

/**
 * The gateway file's schema. The `middlewares:` entries and a route's handler key are built
 * from the type registry it is given (`gatewayTypes` by default), so adding a middleware or
 * handler type needs no change here.
 */

const valueCondition = z.union(
  [
    z.string(),
    z.strictObject({ exact: z.string() }),
    z.strictObject({ prefix: z.string() }),
    z.strictObject({
      regex: z.string().refine(
        (r) => {
          try {
            new RegExp(r);
            return true;
          } catch {
            return false;
          }
        },
        { message: 'not a valid regular expression' },
      ),
    }),
    z.strictObject({ present: z.boolean() }),
  ],
  { error: 'write a condition as a string (exact), { prefix }, { regex } or { present: true|false }' },
);

const pathPattern = z.string().superRefine((value, ctx) => {
  const problem = checkPathPattern(value);
  if (problem) ctx.addIssue({ code: 'custom', message: `path ${JSON.stringify(value)} ${problem}` });
});

const HOST_RE = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;
const hostPattern = z
  .string()
  .regex(HOST_RE, 'write a host name like api.example.com or a wildcard like *.example.com (no port)');

const METHOD_RE = /^[A-Z]+$/;

/** A route's `match:` block. */
export const matchSchema = z
  .strictObject({
    /** `/exact`, `/items/:id`, `/static/*`. */
    path: pathPattern.optional(),
    /** This path and everything below it. */
    pathPrefix: pathPattern.optional(),
    methods: z.array(z.string().regex(METHOD_RE, 'write methods in upper case, like GET')).min(1).optional(),
    /** One host or a list: exact names or `*.example.com`. */
    host: z.union([hostPattern, z.array(hostPattern).min(1)]).optional(),
    headers: z.record(z.string(), valueCondition).optional(),
    query: z.record(z.string(), valueCondition).optional(),
    /** Higher wins over specificity (default 0). */
    priority: z.number().int().default(0),
  })
  .superRefine((m, ctx) => {
    if (m.path !== undefined && m.pathPrefix !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['pathPrefix'],
        message: 'use either path or pathPrefix, not both',
      });
    }
    if (m.pathPrefix !== undefined && /[:*]/.test(m.pathPrefix)) {
      ctx.addIssue({
        code: 'custom',
        path: ['pathPrefix'],
        message: 'a pathPrefix is plain text: no :params or *',
      });
    }
  });

/** One route: match, middlewares by name, and exactly one handler key. */
export function routeSchema(types: TypeRegistry = gatewayTypes) {
  const handlerKeys = () => types.handlers.map((h) => h.type);
  const handlerShape = Object.fromEntries(types.handlers.map((h) => [h.type, h.options.optional()]));
  return z
    .strictObject({
      /** Shown in logs, metrics and /admin/routes; defaults to `<frontend>#<index>`. */
      name: z.string().min(1).optional(),
      match: matchSchema.prefault({}),
      /** Names from the top-level `middlewares:`, applied in this order. */
      middlewares: z.array(z.string()).default([]),
      ...handlerShape,
    })
    .check((payload) => {
      // With an unknown key (`prxy:`) its suggestion says it all; do not add "needs one handler".
      if (payload.issues.length > 0) return;
      const route = payload.value as Record<string, unknown>;
      const present = handlerKeys().filter((k) => route[k] !== undefined);
      if (present.length === 1) return;
      payload.issues.push({
        code: 'custom',
        input: route,
        message:
          present.length === 0
            ? `a route needs one handler: add one of ${handlerKeys().join(', ')}`
            : `a route has exactly one handler, this one has ${present.join(' and ')}`,
      });
    });
}

/** One entry of `middlewares:`: `{ <type>: options }` with exactly one type. */
export function middlewareEntrySchema(types: TypeRegistry = gatewayTypes) {
  const shape = Object.fromEntries(types.middlewares.map((m) => [m.type, m.options.optional()]));
  return z.strictObject(shape).check((payload) => {
    // An unknown key already has its own message (with a suggestion); "needs its type" would only repeat it.
    if (payload.issues.length > 0) return;
    const present = Object.keys(payload.value).filter((k) => payload.value[k] !== undefined);
    if (present.length === 1) return;
    payload.issues.push({
      code: 'custom',
      input: payload.value,
      message:
        present.length === 0
          ? `a middleware needs its type: one of ${types.middlewares.map((m) => m.type).join(', ') || '(none registered)'}`
          : `a middleware has exactly one type, this one has ${present.join(' and ')}`,
    });
  });
}

/** The admin listener. */
export const adminSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(9901),
  /** Set false to run without an admin listener. */
  enabled: z.boolean().default(true),
  /**
   * Bearer token for `POST /admin/actions/<name>` (switching a strangler route, replaying a dead
   * letter…). Without one, actions are refused; write it as `${TRELLIS_ADMIN_TOKEN}`, not inline.
   */
  token: z
    .string()
    .min(16, { error: 'admin.token is too short: use at least 16 random characters (openssl rand -hex 16)' })
    .optional(),
  /** Other Trellis processes' admin URLs: their panels are shown on this dashboard too. */
  peers: z
    .array(
      z.url({
        protocol: /^https?$/,
        error: 'admin.peers entries are admin URLs such as http://127.0.0.1:9902',
      }),
    )
    .default([]),
});

/** Access log: on/off and its level. */
export const accessLogSchema = z.union([
  z.boolean(),
  z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn']).default('info') }),
]);

/** `workers:`: how many processes serve the listeners. */
export const workersSchema = z.union([z.number().int().min(1).max(64), z.literal('auto')], {
  error: 'write workers as a number from 1 to 64, or auto (one per CPU)',
});

/** A client-specific frontend (Backends for Frontends). */
export function frontendSchema(types: TypeRegistry = gatewayTypes) {
  return z
    .strictObject({
      /** Its own listener; otherwise it shares the main one, selected by host and/or pathPrefix. */
      listen: listenSchema.optional(),
      host: z.union([hostPattern, z.array(hostPattern).min(1)]).optional(),
      pathPrefix: pathPattern.optional(),
      /** Applied to every route of this frontend, before the route's own. */
      middlewares: z.array(z.string()).default([]),
      routes: z.array(routeSchema(types)).default([]),
    })
    .superRefine((f, ctx) => {
      if (f.listen === undefined && f.host === undefined && f.pathPrefix === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: 'a frontend needs its own listen, or a host or pathPrefix on the main listener',
        });
      }
    });
}

/** The whole gateway file, for the handler and middleware types of `types`. */
export function gatewaySchema(types: TypeRegistry = gatewayTypes) {
  return z
    .strictObject({
      listen: listenSchema.prefault({ port: 8080 }),
      admin: adminSchema.prefault({}),
      /** Proxies (addresses or CIDRs) whose X-Forwarded-* / Forwarded headers are believed. */
      trustedProxies: z.array(z.string()).default([]),
      /** What to do with `%2F` / `%5C` in a path: refuse (400), decode to `/`, or keep as is. */
      encodedSlashes: z.enum(['reject', 'decode', 'keep']).default('reject'),
      accessLog: accessLogSchema.default(true),
      /** Worker processes behind the same listeners: a count, or `auto` for one per CPU (default 1). */
      workers: workersSchema.default(1),
      /** How long in-flight requests may take to finish on shutdown. */
      drainTimeout: duration().default(10_000),
      stores: z.record(z.string(), storeUrlSchema).default({}),
      services: z.record(z.string(), serviceSchema).default({}),
      middlewares: z.record(z.string(), middlewareEntrySchema(types)).default({}),
      routes: z.array(routeSchema(types)).default([]),
      frontends: z.record(z.string(), frontendSchema(types)).default({}),
    })
    .superRefine((cfg, ctx) => {
      checkReferences(cfg as unknown as GatewayShape, ctx, types);
      checkClashes(cfg as unknown as ClashShape, ctx);
      for (const [name, service] of Object.entries(cfg.services)) {
        const store = service.discovery?.registry?.store;
        const message = store === undefined ? undefined : registryStoreProblem(store, cfg.stores);
        if (message !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['services', name, 'discovery', 'registry', 'store'],
            message,
          });
      }
    });
}

type Path = (string | number)[];
interface ListenShape {
  host: string;
  port: number;
  tls?: { redirectHttp?: { port: number; host?: string | undefined } | undefined } | undefined;
}
interface ClashShape {
  listen: ListenShape;
  admin: { host: string; port: number; enabled: boolean };
  routes: { name?: string | undefined }[];
  frontends: Record<
    string,
    {
      listen?: ListenShape | undefined;
      host?: string | string[] | undefined;
      pathPrefix?: string | undefined;
      routes: { name?: string | undefined }[];
    }
  >;
}

const ANY_HOST = new Set(['', '0.0.0.0', '::', '[::]', '*']);
const sameAddress = (a: string, b: string) => a === b || ANY_HOST.has(a) || ANY_HOST.has(b);

/**
 * What parses but cannot run: two listeners on one port (admin included), two frontends that the
 * main listener cannot tell apart, two routes of one frontend with the same name (their metrics
 * would merge). Each issue sits on the later side and names the earlier one (`params.also`
 * lets the loader add its line).
 */
function checkClashes(cfg: ClashShape, ctx: z.RefinementCtx): void {
  const clash = (path: Path, also: Path, message: string) =>
    ctx.addIssue({ code: 'custom', path, message, params: { also } });

  const ports: { path: Path; host: string; port: number }[] = [];
  const addListener = (listen: ListenShape, base: Path) => {
    ports.push({ path: [...base, 'port'], host: listen.host, port: listen.port });
    const redirect = listen.tls?.redirectHttp;
    if (redirect) {
      ports.push({
        path: [...base, 'tls', 'redirectHttp', 'port'],
        host: redirect.host ?? listen.host,
        port: redirect.port,
      });
    }
  };
  addListener(cfg.listen, ['listen']);
  for (const [name, f] of Object.entries(cfg.frontends))
    if (f.listen) addListener(f.listen, ['frontends', name, 'listen']);
  if (cfg.admin.enabled) ports.push({ path: ['admin', 'port'], host: cfg.admin.host, port: cfg.admin.port });
  ports.forEach((p, i) => {
    // Port 0 asks the system for a free port: never a clash.
    const first = ports
      .slice(0, i)
      .find((q) => p.port !== 0 && q.port === p.port && sameAddress(q.host, p.host));
    if (first) {
      clash(
        p.path,
        first.path,
        `port ${p.port} is already used by ${formatPath(first.path)}: give each listener its own port`,
      );
    }
  });

  const seen: { name: string; path: Path; prefix: string; hosts: string[] | undefined }[] = [];
  for (const [name, f] of Object.entries(cfg.frontends)) {
    if (f.listen) continue;
    const prefix = (f.pathPrefix ?? '/').replace(/(.)\/+$/, '$1');
    const hosts =
      f.host === undefined
        ? undefined
        : (Array.isArray(f.host) ? f.host : [f.host]).map((h) => h.toLowerCase());
    const other = seen.find(
      (o) =>
        o.prefix === prefix &&
        (o.hosts === undefined || hosts === undefined
          ? o.hosts === hosts
          : o.hosts.some((h) => hosts.includes(h))),
    );
    const path: Path = ['frontends', name, f.pathPrefix !== undefined ? 'pathPrefix' : 'host'];
    if (other) {
      clash(
        path,
        other.path,
        `frontend "${name}" selects the same requests as frontend "${other.name}" (pathPrefix ${prefix}${hosts ? `, host ${hosts.join(', ')}` : ''}): give each frontend its own pathPrefix or host`,
      );
    } else {
      seen.push({ name, path, prefix, hosts });
    }
  }

  const checkNames = (routes: { name?: string | undefined }[], frontend: string, base: Path) => {
    const byName = new Map<string, number>();
    routes.forEach((r, i) => {
      const name = r.name ?? `${frontend}#${i}`;
      const j = byName.get(name);
      if (j === undefined) {
        byName.set(name, i);
        return;
      }
      const at = (k: number): Path => (routes[k]!.name === undefined ? [...base, k] : [...base, k, 'name']);
      clash(
        at(i),
        at(j),
        `route name "${name}" is already used by ${formatPath([...base, j])}: give each route its own name (their metrics and logs would merge)`,
      );
    });
  };
  // 'default' is the frontend of the top-level routes (DEFAULT_FRONTEND, named where routes compile).
  checkNames(cfg.routes, 'default', ['routes']);
  for (const [name, f] of Object.entries(cfg.frontends))
    checkNames(f.routes, name, ['frontends', name, 'routes']);
}

/** The parts of a parsed file the reference check reads. */
interface GatewayShape {
  trustedProxies: string[];
  services: Record<string, unknown>;
  middlewares: Record<string, unknown>;
  routes: Record<string, unknown>[];
  frontends: Record<string, { middlewares: string[]; routes: Record<string, unknown>[] }>;
}

function checkReferences(cfg: GatewayShape, ctx: z.RefinementCtx, types: TypeRegistry): void {
  const services = Object.keys(cfg.services);
  const middlewares = Object.keys(cfg.middlewares);
  const unknownMiddleware = (name: string, path: (string | number)[]) => {
    if (cfg.middlewares[name] !== undefined) return;
    ctx.addIssue({
      code: 'custom',
      path,
      message: `unknown middleware "${name}"${didYouMean(name, middlewares)}: define it under middlewares:`,
    });
  };
  const checkRoutes = (routes: Record<string, unknown>[], base: (string | number)[]) => {
    routes.forEach((route, i) => {
      for (const [j, m] of ((route.middlewares as string[]) ?? []).entries()) {
        unknownMiddleware(m, [...base, i, 'middlewares', j]);
      }
      for (const h of types.handlers) {
        const options = route[h.type];
        if (options === undefined || !h.references) continue;
        for (const ref of h.references(options as never)) {
          if (cfg.services[ref.service] !== undefined) continue;
          ctx.addIssue({
            code: 'custom',
            path: [...base, i, h.type, ...ref.path],
            message: `unknown service "${ref.service}"${didYouMean(ref.service, services)}: define it under services:`,
          });
        }
      }
    });
  };
  checkRoutes(cfg.routes, ['routes']);
  for (const [name, f] of Object.entries(cfg.frontends)) {
    f.middlewares.forEach((m, j) => {
      unknownMiddleware(m, ['frontends', name, 'middlewares', j]);
    });
    checkRoutes(f.routes, ['frontends', name, 'routes']);
  }
  cfg.trustedProxies.forEach((p, i) => {
    if (!/^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(p)) {
      ctx.addIssue({
        code: 'custom',
        path: ['trustedProxies', i],
        message: `"${p}" is not an IP address or CIDR range like 10.0.0.0/8`,
      });
    }
  });
}

export type GatewayConfig = z.output<ReturnType<typeof gatewaySchema>>;
export type RouteConfig = GatewayConfig['routes'][number];
export type FrontendConfig = GatewayConfig['frontends'][string];
