import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ResponseFilter } from './response.js';

/**
 * Everything one request carries through the data plane. Created once per request by the
 * listener; middlewares read and enrich it, the handler answers it.
 */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** `x-request-id` from a trusted client, or generated. Sent upstream and back to the client. */
  readonly requestId: string;
  /** The TCP peer's address (IPv4-mapped prefix removed); set by the gateway listener. */
  readonly peer?: string;
  /** Whether the peer is a configured trusted proxy (its X-Forwarded-* headers are believed). */
  readonly peerTrusted?: boolean;
  /** The client's address, after honouring X-Forwarded-For/Forwarded from trusted proxies only. */
  clientIp: string;
  /** The scheme the client used (`https` behind a TLS listener or a trusted proxy saying so). */
  protocol: 'http' | 'https';
  /** The normalised path that routing matched against (no `//`, `/./`, `/../`, decoded unreserved). */
  path: string;
  /** The raw query string without the `?` (empty when none). */
  query: string;
  /** Route parameters (`:id`, `*`). */
  params: Record<string, string>;
  /** Set by the router / handlers, used by the access log and metrics. */
  routeName?: string;
  frontend?: string;
  serviceName?: string;
  upstream?: string;
  /** Values middlewares hand on: `jwt` claims, `apiKey` name, … Keys are the middleware's type. */
  readonly state: Record<string, unknown>;
  readonly log: Logger;
  /** performance.now() when the request arrived. */
  readonly startedAt: number;
  /** Set for an HTTP Upgrade (WebSocket) request: the raw socket and its first bytes. */
  readonly upgrade?: UpgradeInfo;
  /** Filled by the proxy handler for the access log: attempts made, ms until upstream headers, body bytes sent. */
  attempts?: number;
  /** Why each retry was made (`503`, `reset`, `connect-failure`, …), for the access log. */
  retriedOn?: string[];
  upstreamMs?: number;
  responseBytes?: number;
  /** The TRELLIS_E_* code of an error the gateway answered with, for metrics and the access log. */
  errorCode?: string;
  /** The access line is a shadow copy's (the Strangler Fig's), not the client's answer. */
  shadow?: true;
  /**
   * The response phase: `filter` sees the head (status, headers) of the answer the calling
   * middleware wraps just before it goes out, then its body chunks and end, and may rewrite all
   * of it (see `ResponseFilter` in http/response.ts). Call it before `next(ctx)`.
   */
  onResponse(filter: ResponseFilter): void;
  /** Longest silence while the client sends its body (the listener's `bodyTimeout`), ms; 0: none. */
  bodyTimeoutMs?: number;
}

/** The parts of an Upgrade request that live outside the ServerResponse. */
export interface UpgradeInfo {
  readonly socket: Duplex;
  readonly head: Buffer;
}

/** Answers a request. A handler owns the response: it must end it (or hand it to one that does). */
export type Handler = (ctx: RequestContext) => void | Promise<void>;

/** Wraps a handler, like undici interceptors: `(next) => handler`. Composed once, at load. */
export type Middleware = (next: Handler) => Handler;

/** Compose middlewares so the first listed runs first (outermost). */
export function compose(middlewares: readonly Middleware[], handler: Handler): Handler {
  let h = handler;
  for (let i = middlewares.length - 1; i >= 0; i--) h = middlewares[i]!(h);
  return h;
}

export type { IncomingMessage, ServerResponse };

/** Writes the access line of one finished request (the runtime's access log). */
export type AccessLog = (ctx: RequestContext, path: string, status: number, seconds: number) => void;
