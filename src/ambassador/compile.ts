import { z } from 'zod';
import { gatewayTypes } from '../gateway/types.js';
import { defineHandler } from '../handlers/types.js';
import type { ServicePool } from '../http/upstream/types.js';
import {
  type CompileDeps,
  type CompiledListener,
  type CompiledRoute,
  type Generation,
  GenerationParts,
  listenerOf,
} from '../runtime/compile.js';
import { extendTypes, type TypeRegistry } from '../runtime/registry.js';
import { UpstreamBreakers } from './breaker.js';
import { remoteHandler } from './call.js';
import { credentialSource } from './credentials.js';
import { type AmbassadorMetrics, ambassadorMetrics } from './metrics.js';
import { type AmbassadorConfig, listenConfigOf, type RemoteConfig } from './schema.js';

/** The key of the shared listener (top-level `listen:`) that remotes with `hosts:` are on. */
export const SHARED_LISTENER = 'main';

/**
 * Breakers live beside their pool: a reload that keeps a remote's service (its pool, connections
 * and ejection state) keeps its breakers' state too, unless the breaker settings changed.
 */
const breakersOfPool = new WeakMap<
  ServicePool,
  { key: string; breakers: UpstreamBreakers; unsubscribe?: (() => void) | undefined }
>();

/** What the admin API shows of a generation's remotes besides their pools. */
export interface RemoteParts {
  /** Breakers by remote. */
  breakers: Map<string, UpstreamBreakers>;
  /** Metrics by remote (its hedge counts). */
  metrics: Map<string, AmbassadorMetrics>;
}

/** Each generation's breakers and metrics by remote, for the admin API. */
export const generationParts = new WeakMap<Generation, RemoteParts>();

interface RemoteRouteOptions {
  name: string;
  remote: RemoteConfig;
  parts: RemoteParts;
}

/** The one handler of the ambassador's routes: a call to the remote, through its policies. */
const remoteType = defineHandler({
  type: 'remote',
  // Built by compile, never written in a file (the ambassador schema validates remotes).
  options: z.custom<RemoteRouteOptions>(),
  references: (o) => [{ path: [], service: o.name }],
  create(o, deps) {
    const pool = deps.services.get(o.name)!;
    const metrics = ambassadorMetrics(deps.metrics, o.name);
    const key = JSON.stringify(o.remote.breaker);
    let kept = breakersOfPool.get(pool);
    if (kept === undefined || kept.key !== key) {
      kept?.unsubscribe?.();
      const breakers = new UpstreamBreakers(o.remote.breaker, (u, s) => {
        metrics.breaker(u, s);
        deps.logger.warn({ upstream: u, state: s }, 'circuit breaker state changed');
      });
      // Discovery took upstreams away: their breakers, and their breakers' series, go with them.
      const unsubscribe = pool.onUpstreamsChange?.(() => {
        for (const id of breakers.retain(pool.upstreams.map((u) => u.id))) metrics.breakerRemoved(id);
      });
      kept = { key, breakers, unsubscribe };
      breakersOfPool.set(pool, kept);
    }
    o.parts.breakers.set(o.name, kept.breakers);
    o.parts.metrics.set(o.name, metrics);
    const credentials = credentialSource(o.remote.credentials);
    return remoteHandler(o.remote, {
      pool,
      metrics,
      breakers: kept.breakers,
      ...(credentials === undefined ? {} : { credentials }),
    });
  },
});

/** The ambassador's types: the gateway's middlewares and handlers plus `remote`. */
export const ambassadorTypes: TypeRegistry = extendTypes(gatewayTypes, { handlers: [remoteType] });

/**
 * The ambassador role's compile: one service pool per remote, and one catch-all route per remote,
 * on its own loopback listener or on the shared one chosen by Host.
 */
export async function compileAmbassador(
  config: AmbassadorConfig,
  version: number,
  deps: CompileDeps,
): Promise<Generation<AmbassadorConfig>> {
  const parts = new GenerationParts(deps, config.stores);
  const remoteParts: RemoteParts = { breakers: new Map(), metrics: new Map() };
  try {
    parts.addServices(Object.fromEntries(Object.entries(config.remotes).map(([n, r]) => [n, r.service])));
    await parts.discovered();
    const listeners = new Map<string, CompiledListener>();
    const shared: CompiledRoute[] = [];
    for (const [name, remote] of Object.entries(config.remotes)) {
      const options: RemoteRouteOptions = { name, remote, parts: remoteParts };
      const route = { name, middlewares: [], remote: options };
      const compiled = await parts.route(route, name, name, [], {
        pathPrefix: '/',
        ...(remote.hosts === undefined ? {} : { hosts: remote.hosts }),
      });
      if (remote.listen !== undefined)
        listeners.set(name, listenerOf(listenConfigOf(remote.listen), [compiled]));
      else shared.push(compiled);
    }
    if (config.listen !== undefined)
      listeners.set(SHARED_LISTENER, listenerOf(listenConfigOf(config.listen), shared));
    const generation = parts.seal(version, config, listeners);
    generationParts.set(generation, remoteParts);
    return generation;
  } catch (err) {
    await parts.abandon();
    throw err;
  }
}
