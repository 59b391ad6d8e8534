import { parseConfig } from '../core/config.js';
import { gatewayReferencedFiles } from '../gateway/gateway.js';
import { gatewayTypes } from '../gateway/types.js';
import { proxyHandler } from '../handlers/proxy/index.js';
import { problemBody, sendProblem } from '../http/problem.js';
import type { ResponseFilter, ResponseHead, ResponseSink } from '../http/response.js';
import type { Handler, RequestContext } from '../http/types.js';
import { serviceSchema } from '../http/upstream/index.js';
import { type CompiledRoute, GenerationParts, listenerOf } from '../runtime/compile.js';
import type { RoleDefinition } from '../runtime/runtime.js';
import { type SidecarConfig, sidecarSchema } from './schema.js';

/** The inbound listener's key in `ports`. */
export const INBOUND_LISTENER = 'inbound';
/** The service (and route) the inbound listener proxies to. */
export const APP_SERVICE = 'app';

/** What the inbound route asks before forwarding: is the app serving right now? */
export interface AppGate {
  /** True while the app is healthy. */
  open(): boolean;
  /** Resolves true once the gate is open, false after `timeoutMs` (deliveries wait, they do not fail). */
  whenOpen(timeoutMs: number): Promise<boolean>;
  /** Seconds a client should wait before retrying while the gate is closed. */
  retryAfter(): number;
}

/** Parses and validates a sidecar file; throws ConfigError with every problem. */
export function parseSidecarConfig(
  text: string,
  label: string,
  env?: Record<string, string | undefined>,
  types = gatewayTypes,
): SidecarConfig {
  return parseConfig(text, sidecarSchema(types), label, env === undefined ? {} : { env });
}

/**
 * The sidecar role on the shared runtime: one inbound listener whose single route proxies every
 * request to the local app through `inbound.middlewares`, behind the app gate (503 with
 * Retry-After while the app is starting, unhealthy or restarting: never a refused connection).
 */
export function sidecarRole(gate: AppGate): RoleDefinition<SidecarConfig> {
  return {
    name: 'sidecar',
    types: gatewayTypes,
    parse: (text, label, types, env) => parseSidecarConfig(text, label, env, types),
    async compile(config, version, deps) {
      const parts = new GenerationParts(deps, config.stores);
      try {
        parts.addServices({
          [APP_SERVICE]: serviceSchema.parse({
            upstreams: [`http://127.0.0.1:${config.app.port}`],
            timeout: config.timeout,
            // One local upstream: ejecting it would turn a restart into 30 s of 503s.
            outlier: { consecutiveConnectFailures: 0 },
            retry: { attempts: 1 },
          }),
        });
        await parts.addMiddlewares(config.middlewares);
        const route = {
          name: APP_SERVICE,
          middlewares: config.inbound.middlewares,
          proxy: proxyHandler.options.parse({ service: APP_SERVICE }),
        };
        const compiled = await parts.route(route, APP_SERVICE, 'inbound', config.inbound.middlewares, {
          pathPrefix: '/',
          priority: 0,
        });
        const gated: CompiledRoute = { ...compiled, handler: gateHandler(gate, compiled.handler) };
        return parts.seal(version, config, new Map([[INBOUND_LISTENER, listenerOf(config.listen, [gated])]]));
      } catch (err) {
        await parts.abandon();
        throw err;
      }
    },
    settings: (c) => ({
      trustedProxies: c.trustedProxies,
      encodedSlashes: c.encodedSlashes,
      accessLog: c.accessLog,
    }),
    admin: (c) => (c.admin.enabled ? c.admin : undefined),
    drainTimeout: (c) => c.drainTimeout,
    stores: (c) => c.stores,
    referencedFiles: (c, baseDir) =>
      gatewayReferencedFiles({ middlewares: c.middlewares, routes: [], frontends: {} } as never, baseDir),
    checkReload(next, current) {
      const moved: string[] = [];
      if (next.app.port !== current.app.port) moved.push('app.port');
      if (JSON.stringify(next.api) !== JSON.stringify(current.api)) moved.push('api');
      return moved.length === 0
        ? []
        : [`${moved.join(' and ')} cannot change while the sidecar runs: restart it to apply`];
    },
  };
}

const APP_UNAVAILABLE = {
  status: 503,
  code: 'TRELLIS_E_SIDECAR_APP_UNAVAILABLE',
  detail: 'the app is not serving right now (starting, unhealthy or restarting): retry shortly',
} as const;

/**
 * 503 + Retry-After while the gate is closed; the app's own answer otherwise, except when the
 * app's port refused the connection (it crashed or closed its listener since the last health
 * check): that too is "the app is not serving", so 503 + Retry-After rather than the proxy's 502.
 */
function gateHandler(gate: AppGate, next: Handler): Handler {
  return (ctx) => {
    if (gate.open()) {
      ctx.onResponse(new RefusedAsUnavailable(ctx, gate));
      return next(ctx);
    }
    sendProblem(ctx, { ...APP_UNAVAILABLE, headers: { 'retry-after': String(gate.retryAfter()) } });
  };
}

/**
 * Rewrites the proxy's 502 for a refused connection (code TRELLIS_E_UPSTREAM_UNAVAILABLE, which
 * the exchange sets only when no connection to the app could be made, so the app never saw the
 * request) into the gate's 503 + Retry-After. Any answer of the app itself, and a 502 for an
 * exchange cut mid-way (TRELLIS_E_UPSTREAM_RESET: the app may have acted on it), pass untouched.
 */
class RefusedAsUnavailable implements ResponseFilter {
  // A class, not a closure per method: one small object per request on the inbound hot path.
  #body: string | undefined;
  constructor(
    private readonly ctx: RequestContext,
    private readonly gate: AppGate,
  ) {}

  head(head: ResponseHead): undefined {
    if (head.statusCode !== 502 || this.ctx.errorCode !== 'TRELLIS_E_UPSTREAM_UNAVAILABLE') return undefined;
    this.#body = problemBody(APP_UNAVAILABLE, this.ctx.requestId);
    this.ctx.errorCode = APP_UNAVAILABLE.code;
    head.statusCode = 503;
    head.setHeader('retry-after', String(this.gate.retryAfter()));
    head.setHeader('content-length', String(Buffer.byteLength(this.#body)));
    return undefined;
  }

  write(chunk: Buffer, out: ResponseSink): boolean {
    return this.#body === undefined ? out.write(chunk) : true;
  }

  end(out: ResponseSink): void {
    if (this.#body === undefined) out.end();
    else out.end(this.#body);
  }
}
