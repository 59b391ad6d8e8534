import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Dispatcher } from 'undici';
import type { AdminAction, AdminPanel, AdminParts } from '../admin/panels.js';
import { TrellisError } from '../core/errors.js';
import type { HandlerInstance } from '../handlers/types.js';
import type { ListenConfig } from '../http/listener.js';
import { compose, type Handler, type Middleware } from '../http/types.js';
import { createServicePool, loadUpstreamTls, type UpstreamPool } from '../http/upstream/index.js';
import type { ServiceDef } from '../http/upstream/schema.js';
import type { ServicePool } from '../http/upstream/types.js';
import type { HealthReport, MiddlewareInstance } from '../middlewares/types.js';
import type { SharedStores } from '../stores/shared.js';
import type { AccessLog } from './access-log.js';
import type { RuntimeMetrics } from './metrics.js';
import { findMiddlewareType, type TypeRegistry } from './registry.js';
import type { RouteStats } from './route-stats.js';
import { compileRoutes, type RouteMatch, type RouteTable } from './router.js';

/**
 * The building blocks a role's `compile` puts a generation together with: service pools (kept
 * across reloads when unchanged), middleware instances, routes (middleware chain composed once
 * around the handler) and one route table per listener. A role decides which routes go on which
 * listener; everything else is the same for a gateway, a sidecar or an ambassador.
 */

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
export interface Generation<C = unknown> {
  readonly version: number;
  readonly config: C;
  readonly listeners: ReadonlyMap<string, CompiledListener>;
  readonly services: ReadonlyMap<string, ServicePool>;
  /** Service definitions as JSON, so an unchanged service keeps its pool across reloads. */
  readonly serviceKeys: ReadonlyMap<string, string>;
  readonly closeables: readonly (() => Promise<void>)[];
  /** Middlewares that report on what they depend on (for `/readyz`), by name. */
  readonly checks: ReadonlyMap<string, () => HealthReport>;
  /** Dashboard panels and admin actions the handlers and middlewares carry. */
  readonly panels: readonly AdminPanel[];
  readonly actions: readonly AdminAction[];
  inFlight: number;
}

/** What compiling may use. */
export interface CompileDeps {
  logger: Logger;
  registry: Registry;
  metrics: RuntimeMetrics;
  baseDir: string;
  /** The handler and middleware types configurations may use. */
  types: TypeRegistry;
  /** The process's named stores, opened once and shared by every generation. */
  shared: SharedStores;
  /** The generation being replaced: unchanged services keep their pools (and health state). */
  previous?: Generation | undefined;
  /** Dispatchers for origins reached another way than TCP (see `ServicePoolDeps.dispatcherFor`). */
  dispatcherFor?: ((origin: URL) => Dispatcher | undefined) | undefined;
  /** The role's access log (false: off), for lines a handler writes itself (shadow copies). */
  accessLog?: AccessLog | false | undefined;
}

/** The parts of a generation under construction; `abandon` closes what was made if it fails. */
export class GenerationParts {
  readonly services = new Map<string, ServicePool>();
  readonly serviceKeys = new Map<string, string>();
  readonly middlewares = new Map<string, MiddlewareInstance>();
  readonly closeables: (() => Promise<void>)[] = [];
  readonly checks = new Map<string, () => HealthReport>();
  readonly panels: AdminPanel[] = [];
  readonly actions: AdminAction[] = [];
  private readonly created: UpstreamPool[] = [];

  constructor(
    readonly deps: CompileDeps,
    /** Named store URLs of the configuration (handed to handlers and middlewares as they are). */
    readonly stores: Record<string, string>,
  ) {}

  /** Pools for `services:`; an unchanged definition reuses the previous generation's pool. */
  addServices(defs: Record<string, ServiceDef>): void {
    const previous = this.deps.previous;
    for (const [name, def] of Object.entries(defs)) {
      // TLS files are read now: their contents are part of the key, so a rotated certificate
      // (same path, new bytes) makes a new pool instead of reusing connections made with the old.
      const tls = def.tls === undefined ? undefined : loadUpstreamTls(name, def.tls, this.deps.baseDir);
      const key = tls === undefined ? JSON.stringify(def) : `${JSON.stringify(def)}\0${tls.fingerprint}`;
      this.serviceKeys.set(name, key);
      const reuse = previous?.serviceKeys.get(name) === key ? previous.services.get(name) : undefined;
      // A registry's store is opened through this generation's view, so it counts as used by
      // it and stays open while the (possibly reused) pool watches it.
      const keyValue = (store: string) => this.deps.shared.keyValue(store);
      if (reuse) {
        const store = def.discovery?.registry?.store;
        if (store !== undefined) keyValue(store).catch(() => undefined);
        this.services.set(name, reuse);
        continue;
      }
      const pool = createServicePool(name, def, {
        logger: this.deps.logger,
        metrics: this.deps.registry,
        dispatcherFor: this.deps.dispatcherFor,
        tls,
        baseDir: this.deps.baseDir,
        keyValue,
      });
      this.created.push(pool);
      this.services.set(name, pool);
    }
  }

  /**
   * Waits (at most `timeoutMs`) for the new pools' discovery to have a first answer, so a
   * configuration does not start serving 503s for services whose DNS answer is a few ms away. A
   * source that has not answered by then goes on in the background (its service answers 503
   * TRELLIS_E_NO_UPSTREAM until it does).
   */
  async discovered(timeoutMs = 5_000): Promise<void> {
    const waiting = this.created.map((p) => p.settled);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(waiting),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Instances for `middlewares:` (`{ name: { <type>: options } }`). */
  async addMiddlewares(entries: Record<string, unknown>): Promise<void> {
    for (const [name, entry] of Object.entries(entries)) {
      const [type, options] = Object.entries(entry as Record<string, unknown>).find(
        ([, v]) => v !== undefined,
      )!;
      const def = findMiddlewareType(this.deps.types, type);
      if (def === undefined) {
        throw new TrellisError('TRELLIS_E_ROUTE_INVALID', `middleware ${name}: unknown type "${type}"`);
      }
      const instance = await def.create(options as never, {
        logger: this.deps.logger.child({ middleware: name }),
        metrics: this.deps.registry,
        name,
        baseDir: this.deps.baseDir,
        stores: this.stores,
        shared: this.deps.shared,
      });
      this.middlewares.set(name, instance);
      if (instance.close) this.closeables.push(instance.close);
      if (instance.health) this.checks.set(name, instance.health);
      this.addAdminParts(instance);
    }
  }

  /** One route: its handler (the one registered key it has), wrapped in its middleware chain. */
  async route(
    route: RouteShape,
    name: string,
    frontend: string,
    middlewareNames: readonly string[],
    match: RouteMatch,
  ): Promise<CompiledRoute> {
    const r = route as unknown as Record<string, unknown>;
    const def = this.deps.types.handlers.find((h) => r[h.type] !== undefined);
    if (def === undefined) throw new TrellisError('TRELLIS_E_ROUTE_INVALID', `route ${name} has no handler`);
    const options = r[def.type];
    const refs = def.references?.(options as never) ?? [];
    const instance: HandlerInstance = await def.create(options as never, {
      logger: this.deps.logger.child({ route: name }),
      metrics: this.deps.registry,
      services: this.services,
      baseDir: this.deps.baseDir,
      stores: this.stores,
      shared: this.deps.shared,
      routeName: name,
      accessLog: this.deps.accessLog ?? false,
    });
    if (instance.close) this.closeables.push(instance.close);
    this.addAdminParts(instance);
    const chain: Middleware[] = middlewareNames.map((n) => this.middlewares.get(n)!);
    const service = refs[0]?.service ?? '';
    return {
      name,
      frontend,
      handlerType: def.type,
      service,
      middlewares: middlewareNames,
      match,
      handler: compose(chain, instance),
      stats: this.deps.metrics.routes.get(frontend, name, service),
    };
  }

  private addAdminParts(instance: AdminParts): void {
    if (instance.panels) this.panels.push(...instance.panels);
    if (instance.actions) this.actions.push(...instance.actions);
  }

  /** The finished generation. */
  seal<C>(version: number, config: C, listeners: ReadonlyMap<string, CompiledListener>): Generation<C> {
    return {
      version,
      config,
      listeners,
      services: this.services,
      serviceKeys: this.serviceKeys,
      closeables: this.closeables,
      checks: this.checks,
      panels: this.panels,
      actions: this.actions,
      inFlight: 0,
    };
  }

  /** Closes everything made so far (compiling failed). */
  async abandon(): Promise<void> {
    await Promise.allSettled([...this.created.map((p) => p.close()), ...this.closeables.map((c) => c())]);
  }
}

/** The shape every route has, whatever the role: a name, middlewares and one handler key. */
export interface RouteShape {
  name?: string | undefined;
  middlewares: readonly string[];
}

/** A listener with its route table. */
export function listenerOf(listen: ListenConfig, routes: readonly CompiledRoute[]): CompiledListener {
  return { listen, routes, table: compileRoutes(routes.map((r) => ({ match: r.match, value: r }))) };
}

/** Closes what `retired` holds that `next` does not share (pools, middlewares, handlers). */
export async function closeGeneration(retired: Generation, next: Generation | undefined): Promise<void> {
  const kept = new Set(next?.services.values() ?? []);
  await Promise.allSettled([
    ...[...retired.services.values()].filter((p) => !kept.has(p)).map((p) => p.close()),
    ...retired.closeables.map((c) => c()),
  ]);
}
