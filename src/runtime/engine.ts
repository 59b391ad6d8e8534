import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { admitRequest, onRefusedConnection, refuseConnection } from '../http/edge.js';
import type { TrustedProxies } from '../http/forwarded.js';
import { type EncodedSlashes, normalizeTarget, type PathRejection } from '../http/normalize.js';
import { sendProblem } from '../http/problem.js';
import { TrellisResponse } from '../http/response.js';
import type { UpgradeInfo } from '../http/types.js';
import type { AccessLog } from './access-log.js';
import type { CompiledListener, Generation } from './compile.js';
import { RuntimeContext } from './context.js';
import type { RuntimeMetrics } from './metrics.js';

/**
 * The per-request work every runtime route gets (gateway, sidecar, ambassador alike), before and after its middlewares and handler:
 * limits, path normalisation, request id, client address, route lookup, then one access-log
 * line and the metrics when the response closes. Reads the active Generation once per request,
 * so a reload never changes a request midway.
 */

/** Settings that hold for the whole runtime (from the active configuration). */
export interface EngineSettings {
  trusted: TrustedProxies;
  encodedSlashes: EncodedSlashes;
  /** The access-log writer, or false for none. */
  accessLog: AccessLog | false;
}

/** Where the engine reads the active generation; swapped atomically by reloads. */
export interface ActiveState {
  current: Generation;
  settings: EngineSettings;
  /** Generations replaced but still serving requests. */
  retired: Set<Generation>;
  logger: Logger;
  metrics: RuntimeMetrics;
  /** Closes a retired generation once its last request finished. */
  closeRetired(generation: Generation): void;
}

const REJECTIONS: Record<PathRejection, string> = {
  'invalid-percent-encoding': 'the path has an invalid percent-encoding',
  'encoded-slash': 'the path has an encoded slash (%2F or %5C), which this gateway refuses',
  backslash: 'the path has a backslash, which this gateway refuses (origins may read it as /)',
  'null-byte': 'the path has an encoded NUL byte',
  'not-origin-form': 'the request target is not a path',
};

/** Handles requests for one listener (`main` or a frontend with its own listen). */
export class ListenerEngine {
  constructor(
    private readonly key: string,
    private readonly state: ActiveState,
  ) {}

  /** node:http 'request' listener. */
  readonly request = (req: IncomingMessage, res: ServerResponse): void => {
    this.serve(req, res, undefined);
  };

  /** node:http 'upgrade' listener: runs the same pipeline with a response bound to the socket. */
  readonly upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const res = new TrellisResponse(req);
    res.assignSocket(socket as never);
    res.shouldKeepAlive = false;
    // If no handler takes over the socket, it closes once the ordinary answer is written.
    res.once('finish', () => socket.end());
    socket.on('error', () => socket.destroy());
    this.serve(req, res, { socket, head });
  };

  /** The request entry: limits and path checks, then routing. */
  private serve(req: IncomingMessage, res: ServerResponse, upgrade: UpgradeInfo | undefined): void {
    if (onRefusedConnection(req.socket)) return void req.socket.end();
    const state = this.state;
    const generation = state.current;
    const listener = generation.listeners.get(this.key);
    const ctx = new RuntimeContext(req, res, state.settings.trusted, state.logger, upgrade);
    generation.inFlight++;
    // 'close' is emitted once per response: `on` spares the once-wrapper per request.
    res.on('close', () => this.finished(ctx, generation));
    if (listener === undefined) {
      this.refuse(ctx, 503, 'TRELLIS_E_NO_ROUTE', 'this listener has no routes in the active configuration');
      return;
    }
    const limits = listener.listen;
    if (req.rawHeaders.length > limits.maxHeaderCount * 2) {
      this.refuse(
        ctx,
        431,
        'TRELLIS_E_HEADERS_TOO_LARGE',
        `more than ${limits.maxHeaderCount} header fields`,
      );
      return;
    }
    const url = req.url ?? '/';
    if (url.length > limits.maxUrlLength) {
      this.refuse(
        ctx,
        414,
        'TRELLIS_E_URI_TOO_LONG',
        `the request target is longer than ${limits.maxUrlLength} bytes`,
      );
      return;
    }
    ctx.bodyTimeoutMs = limits.bodyTimeout;
    const refusal = admitRequest(req, limits);
    if (refusal !== undefined) {
      this.refuse(ctx, refusal.status, refusal.code, refusal.detail, refusal.headers);
      return;
    }
    const h = req.headers;
    // node's parser already refuses these; checked again because a forwarded ambiguity is a
    // request-smuggling hole, and the check costs one property read.
    if (
      h['transfer-encoding'] !== undefined &&
      (h['content-length'] !== undefined || !/^chunked$/i.test(h['transfer-encoding']))
    ) {
      this.refuse(
        ctx,
        400,
        'TRELLIS_E_BAD_REQUEST',
        'conflicting or unsupported Content-Length / Transfer-Encoding',
      );
      return;
    }
    const target = normalizeTarget(url, state.settings.encodedSlashes);
    if (typeof target === 'string') {
      this.refuse(ctx, 400, 'TRELLIS_E_BAD_PATH', REJECTIONS[target]);
      return;
    }
    ctx.path = target.path;
    ctx.query = target.query;
    this.route(ctx, listener);
  }

  private route(ctx: RuntimeContext, listener: CompiledListener): void {
    const req = ctx.req;
    const hit = listener.table.match(req.method ?? 'GET', req.headers.host, ctx.path, req.headers, ctx.query);
    if (hit === undefined) {
      this.refuse(ctx, 404, 'TRELLIS_E_NO_ROUTE', `no route matches ${req.method} ${ctx.path}`);
      return;
    }
    const route = hit.value;
    ctx.route = route;
    ctx.params = hit.params;
    ctx.routeName = route.name;
    ctx.frontend = route.frontend;
    if (route.service !== '') ctx.serviceName = route.service;
    try {
      const result = route.handler(ctx);
      if (result !== undefined) result.catch((err: unknown) => this.crashed(ctx, err));
    } catch (err) {
      this.crashed(ctx, err);
    }
  }

  private refuse(
    ctx: RuntimeContext,
    status: number,
    code: string,
    detail: string,
    headers?: Record<string, string>,
  ): void {
    ctx.errorCode = code;
    // A refused head may be the first half of a smuggling attempt: close the connection after it.
    if (status !== 404 && status !== 503) {
      ctx.res.shouldKeepAlive = false;
      refuseConnection(ctx.req.socket);
    }
    sendProblem(ctx, { status, code, detail, ...(headers === undefined ? {} : { headers }) });
  }

  private crashed(ctx: RuntimeContext, err: unknown): void {
    ctx.log.error({ err, route: ctx.routeName }, 'route handler failed');
    ctx.errorCode = 'TRELLIS_E_INTERNAL';
    // The message stays in the log: a handler's internals are not the client's business.
    sendProblem(ctx, {
      status: 500,
      code: 'TRELLIS_E_INTERNAL',
      detail: 'the gateway failed to handle the request',
    });
  }

  private finished(ctx: RuntimeContext, generation: Generation): void {
    const state = this.state;
    generation.inFlight--;
    if (generation.inFlight === 0 && state.retired.has(generation)) state.closeRetired(generation);
    const res = ctx.res;
    const status = res.headersSent || res.writableFinished ? res.statusCode : 499;
    const seconds = (performance.now() - ctx.startedAt) / 1000;
    const route = ctx.route;
    const metrics = state.metrics;
    (route?.stats ?? metrics.routes.get('', '', '')).record(status, seconds);
    if (ctx.errorCode !== undefined || status >= 500) {
      metrics.errors.inc({
        frontend: route?.frontend ?? '',
        route: route?.name ?? '',
        service: ctx.serviceName ?? '',
        error: ctx.errorCode ?? 'upstream_5xx',
      });
    }
    const accessLog = state.settings.accessLog;
    if (accessLog !== false) accessLog(ctx, ctx.path || (ctx.req.url ?? ''), status, seconds);
  }
}
