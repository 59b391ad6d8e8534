import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { TrellisError } from '../core/errors.js';
import { handlerTypes } from '../handlers/registry.js';
import type { HandlerInstance } from '../handlers/types.js';
import type { ListenConfig } from '../http/listener.js';
import { compose, type Handler, type Middleware } from '../http/types.js';
import { createServicePool } from '../http/upstream/index.js';
import type { ServicePool } from '../http/upstream/types.js';
import { findMiddlewareType } from '../middlewares/registry.js';
import type { HealthReport, MiddlewareInstance } from '../middlewares/types.js';
import type { GatewayMetrics } from './metrics.js';
import type { RouteStats } from './route-stats.js';
import { compileRoutes, type RouteMatch, type RouteTable } from './router.js';
import type { GatewayConfig, RouteConfig } from './schema.js';

/** The frontend of the top-level `routes:`. */
export const DEFAULT_FRONTEND = 'default';
/** The key of the main listener (`listen:`); frontends with their own `listen:` use their name. */
export const MAIN_LISTENER = 'main';

/** A route ready to serve. */
export interface CompiledRoute {
  readonly name: string;
  readonly frontend: string;
  readonly handlerType: string;
  /** The service the route mainly talks to ('' when none), for logs and metrics. */
  readonly service: string;
  /** Middleware names in the order they run (frontend's first, then the route's). */
  readonly middlewares: readonly string[];
  readonly match: RouteMatch;
  readonly handler: Handler;
  /** Request counts and latency for /metrics. */
  readonly stats: RouteStats;
}

/** One listener's share of a configuration. */
export interface CompiledListener {
  readonly listen: ListenConfig;
  readonly table: RouteTable<CompiledRoute>;
  readonly routes: readonly CompiledRoute[];
}

/** A compiled, immutable configuration. Requests hold on to the one they started with. */
export interface Generation {
  readonly version: number;
  readonly config: GatewayConfig;
  readonly listeners: ReadonlyMap<string, CompiledListener>;
  readonly services: ReadonlyMap<string, ServicePool>;
  /** Service definitions as JSON, so an unchanged service keeps its pool across reloads. */
  readonly serviceKeys: ReadonlyMap<string, string>;
  readonly closeables: readonly (() => Promise<void>)[];
  /** Middlewares that report on what they depend on (for `/readyz`), by name. */
  readonly checks: ReadonlyMap<string, () => HealthReport>;
  inFlight: number;
}

export interface CompileDeps {
  logger: Logger;
  registry: Registry;
  metrics: GatewayMetrics;
  baseDir: string;
  /** The generation being replaced: unchanged services keep their pools (and health state). */
  previous?: Generation | undefined;
}

/** Builds pools, middlewares, handlers and route tables. Throws if a part cannot be created. */
export async function compileGeneration(
  config: GatewayConfig,
  version: number,
  deps: CompileDeps,
): Promise<Generation> {
  const services = new Map<string, ServicePool>();
  const serviceKeys = new Map<string, string>();
  const created: ServicePool[] = [];
  const closeables: (() => Promise<void>)[] = [];
  try {
    for (const [name, def] of Object.entries(config.services)) {
      const key = JSON.stringify(def);
      serviceKeys.set(name, key);
      const reuse =
        deps.previous?.serviceKeys.get(name) === key ? deps.previous.services.get(name) : undefined;
      if (reuse) {
        services.set(name, reuse);
        continue;
      }
      const pool = createServicePool(name, def, { logger: deps.logger, metrics: deps.registry });
      created.push(pool);
      services.set(name, pool);
    }

    const middlewares = new Map<string, MiddlewareInstance>();
    const checks = new Map<string, () => HealthReport>();
    for (const [name, entry] of Object.entries(config.middlewares)) {
      const [type, options] = Object.entries(entry as Record<string, unknown>).find(
        ([, v]) => v !== undefined,
      )!;
      const def = findMiddlewareType(type)!;
      const instance = await def.create(options as never, {
        logger: deps.logger.child({ middleware: name }),
        metrics: deps.registry,
        name,
        baseDir: deps.baseDir,
        stores: config.stores,
      });
      middlewares.set(name, instance);
      if (instance.close) closeables.push(instance.close);
      if (instance.health) checks.set(name, instance.health);
    }

    const routesFor = async (frontend: string, routes: RouteConfig[], shared: SharedRouteBits) => {
      const out: CompiledRoute[] = [];
      for (let i = 0; i < routes.length; i++) {
        const r = await compileRoute(
          routes[i]!,
          i,
          frontend,
          shared,
          { services, middlewares, closeables, stores: config.stores },
          deps,
        );
        out.push(r);
      }
      return out;
    };

    const listeners = new Map<string, CompiledListener>();
    const mainRoutes = await routesFor(DEFAULT_FRONTEND, config.routes, { middlewares: [] });
    for (const [name, f] of Object.entries(config.frontends)) {
      const hosts = f.host === undefined ? undefined : Array.isArray(f.host) ? f.host : [f.host];
      const routes = await routesFor(name, f.routes, {
        middlewares: f.middlewares,
        hosts,
        pathPrefix: f.pathPrefix,
      });
      if (f.listen !== undefined) listeners.set(name, listenerOf(f.listen, routes));
      else mainRoutes.push(...routes);
    }
    listeners.set(MAIN_LISTENER, listenerOf(config.listen, mainRoutes));
    return { version, config, listeners, services, serviceKeys, closeables, checks, inFlight: 0 };
  } catch (err) {
    await Promise.allSettled([...created.map((p) => p.close()), ...closeables.map((c) => c())]);
    throw err;
  }
}

function listenerOf(listen: ListenConfig, routes: CompiledRoute[]): CompiledListener {
  return { listen, routes, table: compileRoutes(routes.map((r) => ({ match: r.match, value: r }))) };
}

/** What a frontend adds to each of its routes. */
interface SharedRouteBits {
  middlewares: readonly string[];
  hosts?: readonly string[] | undefined;
  pathPrefix?: string | undefined;
}

interface Parts {
  services: ReadonlyMap<string, ServicePool>;
  middlewares: ReadonlyMap<string, MiddlewareInstance>;
  closeables: (() => Promise<void>)[];
  stores: Record<string, string>;
}

async function compileRoute(
  route: RouteConfig,
  index: number,
  frontend: string,
  shared: SharedRouteBits,
  parts: Parts,
  deps: CompileDeps,
): Promise<CompiledRoute> {
  const name = route.name ?? `${frontend}#${index}`;
  const r = route as Record<string, unknown>;
  const def = handlerTypes.find((h) => r[h.type] !== undefined);
  if (def === undefined) throw new TrellisError('TRELLIS_E_ROUTE_INVALID', `route ${name} has no handler`);
  const options = r[def.type];
  const refs = def.references?.(options as never) ?? [];
  const instance: HandlerInstance = await def.create(options as never, {
    logger: deps.logger.child({ route: name }),
    metrics: deps.registry,
    services: parts.services,
    baseDir: deps.baseDir,
    stores: parts.stores,
    routeName: name,
  });
  if (instance.close) parts.closeables.push(instance.close);
  const names = [...shared.middlewares, ...route.middlewares];
  const chain: Middleware[] = names.map((n) => parts.middlewares.get(n)!);
  const service = refs[0]?.service ?? '';
  return {
    name,
    frontend,
    handlerType: def.type,
    service,
    middlewares: names,
    match: matchOf(route.match, shared),
    handler: compose(chain, instance),
    stats: deps.metrics.routes.get(frontend, name, service),
  };
}

function matchOf(m: RouteConfig['match'], shared: SharedRouteBits): RouteMatch {
  const hosts = m.host === undefined ? shared.hosts : Array.isArray(m.host) ? m.host : [m.host];
  let path = m.path;
  let pathPrefix = m.pathPrefix;
  if (shared.pathPrefix !== undefined) {
    const base = shared.pathPrefix.replace(/\/$/, '');
    if (path !== undefined) path = `${base}${path === '/' ? '' : path}` || '/';
    else if (pathPrefix !== undefined) pathPrefix = `${base}${pathPrefix === '/' ? '' : pathPrefix}` || '/';
    else pathPrefix = base || '/';
  }
  return {
    ...(m.methods === undefined ? {} : { methods: m.methods }),
    ...(hosts === undefined ? {} : { hosts }),
    ...(path === undefined ? {} : { path }),
    ...(pathPrefix === undefined ? {} : { pathPrefix }),
    ...(m.headers === undefined ? {} : { headers: m.headers }),
    ...(m.query === undefined ? {} : { query: m.query }),
    priority: m.priority,
  };
}

/** Closes what `retired` holds that `next` does not share (pools, middlewares, handlers). */
export async function closeGeneration(retired: Generation, next: Generation | undefined): Promise<void> {
  const kept = new Set(next?.services.values() ?? []);
  await Promise.allSettled([
    ...[...retired.services.values()].filter((p) => !kept.has(p)).map((p) => p.close()),
    ...retired.closeables.map((c) => c()),
  ]);
}
