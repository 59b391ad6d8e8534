import type { ListenConfig } from '../http/listener.js';
import {
  type CompileDeps,
  type CompiledListener,
  type CompiledRoute,
  type Generation,
  GenerationParts,
  listenerOf,
} from '../runtime/compile.js';
import type { RouteMatch } from '../runtime/router.js';
import type { GatewayConfig, RouteConfig } from './schema.js';

/** The frontend of the top-level `routes:`. */
export const DEFAULT_FRONTEND = 'default';
/** The key of the main listener (`listen:`); frontends with their own `listen:` use their name. */
export const MAIN_LISTENER = 'main';

/** What a frontend adds to each of its routes. */
interface SharedRouteBits {
  middlewares: readonly string[];
  hosts?: readonly string[] | undefined;
  pathPrefix?: string | undefined;
}

/**
 * The gateway role's compile: services, middlewares, then the routes of `routes:` and of each
 * frontend, on the main listener or on the frontend's own. Throws if a part cannot be created
 * (after closing what was made).
 */
export async function compileGateway(
  config: GatewayConfig,
  version: number,
  deps: CompileDeps,
): Promise<Generation<GatewayConfig>> {
  const parts = new GenerationParts(deps, config.stores);
  try {
    parts.addServices(config.services);
    await parts.discovered();
    await parts.addMiddlewares(config.middlewares);
    const routesFor = async (frontend: string, routes: RouteConfig[], shared: SharedRouteBits) => {
      const out: CompiledRoute[] = [];
      for (let i = 0; i < routes.length; i++) {
        const route = routes[i]!;
        const name = route.name ?? `${frontend}#${i}`;
        const names = [...shared.middlewares, ...route.middlewares];
        out.push(await parts.route(route, name, frontend, names, matchOf(route.match, shared)));
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
      if (f.listen !== undefined) listeners.set(name, listenerOf(f.listen as ListenConfig, routes));
      else mainRoutes.push(...routes);
    }
    listeners.set(MAIN_LISTENER, listenerOf(config.listen, mainRoutes));
    return parts.seal(version, config, listeners);
  } catch (err) {
    await parts.abandon();
    throw err;
  }
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
