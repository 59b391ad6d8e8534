import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { silentLogger } from '../core/logger.js';
import { clientAddress, socketPeer, TrustedProxies } from '../http/forwarded.js';
import { requestIdFrom } from '../http/request-id.js';
import { type ResponseFilter, TrellisResponse } from '../http/response.js';
import type { RequestContext, UpgradeInfo } from '../http/types.js';
import type { CompiledRoute } from './compile.js';

/** What a RequestContext is made from besides the request and its response. */
export interface ContextOptions {
  /** Proxies whose X-Forwarded-* / Forwarded headers are believed (default: none). */
  trusted?: TrustedProxies;
  /** The runtime's logger; the context's `log` is a child with the request id (default: silent). */
  logger?: Logger;
  /** The raw socket and first bytes of an HTTP Upgrade request. */
  upgrade?: UpgradeInfo;
}

const EMPTY: Record<string, string> = Object.freeze({}) as Record<string, string>;
const NO_PROXIES = new TrustedProxies([]);
let silent: Logger | undefined;

/**
 * The RequestContext of every runtime request. Fields the router and handlers fill (path,
 * params, route, upstream, …) start empty. One class, so every context has the same shape
 * (V8 keeps one hidden class for all of them).
 */
export class RuntimeContext implements RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  readonly peer: string;
  readonly peerTrusted: boolean;
  clientIp: string;
  protocol: 'http' | 'https';
  path = '';
  query = '';
  params: Record<string, string> = EMPTY;
  routeName?: string;
  frontend?: string;
  serviceName?: string;
  upstream?: string;
  readonly state: Record<string, unknown> = {};
  readonly startedAt: number;
  readonly upgrade: UpgradeInfo | undefined;
  attempts?: number;
  retriedOn?: string[];
  upstreamMs?: number;
  responseBytes?: number;
  errorCode?: string;
  bodyTimeoutMs?: number;
  /** The route that matched (set by the engine). */
  route: CompiledRoute | undefined;
  private readonly baseLogger: Logger;
  private childLogger: Logger | undefined;

  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    trusted: TrustedProxies,
    logger: Logger,
    upgrade: UpgradeInfo | undefined,
  ) {
    this.startedAt = performance.now();
    this.req = req;
    this.res = res;
    this.upgrade = upgrade;
    this.baseLogger = logger;
    this.requestId = requestIdFrom(req.headers['x-request-id']);
    this.peer = socketPeer(req.socket).peer;
    this.peerTrusted = trusted.any && trusted.trusts(this.peer);
    this.clientIp = this.peerTrusted ? clientAddress(this.peer, req.headers, trusted) : this.peer;
    const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
    const claimed = this.peerTrusted ? req.headers['x-forwarded-proto'] : undefined;
    this.protocol = claimed === 'https' || claimed === 'http' ? claimed : encrypted ? 'https' : 'http';
  }

  /** A child logger with the request id, made only when someone logs. */
  get log(): Logger {
    this.childLogger ??= this.baseLogger.child({ reqId: this.requestId });
    return this.childLogger;
  }

  onResponse(filter: ResponseFilter): void {
    if (!(this.res instanceof TrellisResponse)) {
      // A programming error in a test or embedding, not a request problem.
      throw new Error(
        'ctx.onResponse needs the runtime response: create the server with { ServerResponse: TrellisResponse }',
      );
    }
    this.res.addFilter(filter);
  }
}

/**
 * Makes the RequestContext the runtime gives a request: request id, TCP peer, client address
 * and scheme (honouring trusted proxies only). `res` should be a `TrellisResponse` (the runtime's
 * listeners make them; for a server of your own pass `{ ServerResponse: TrellisResponse }` to
 * `http.createServer`), or `ctx.onResponse` throws. Tests and embedders use this instead of
 * building contexts by hand; the router fills `path`, `query` and `params`.
 */
export function createRequestContext(
  req: IncomingMessage,
  res: ServerResponse,
  options: ContextOptions = {},
): RuntimeContext {
  silent ??= silentLogger();
  const logger = options.logger ?? silent;
  return new RuntimeContext(req, res, options.trusted ?? NO_PROXIES, logger, options.upgrade);
}
