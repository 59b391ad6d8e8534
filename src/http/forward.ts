import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { failureOf } from './exchange/outcome.js';
import { retryAllowed } from './exchange/retry-rules.js';
import { pushForwardingHeaders, socketPeer } from './forwarded.js';
import { sendProblem } from './problem.js';
import type { RequestContext } from './types.js';
import type { AttemptOutcome, ServicePool, Upstream } from './upstream/types.js';

export { outcomeOf } from './exchange/outcome.js';

/**
 * The streaming form of the forwarding exchange (see src/http/exchange/index.ts), and the
 * proxy's hot path. One `Exchange` object per request drives undici's raw dispatch API
 * (`onConnect/onHeaders/onData/onComplete/onError`): status and headers are written straight to
 * the client's response and body chunks are piped with backpressure (pause on a full socket,
 * resume on drain). No Readable, no promise per chunk: that is what makes it faster than
 * `request()` + pipeline.
 */

/** Per-route forwarding options, compiled at load. */
export interface ForwardOptions {
  /** Whether non-idempotent methods (POST, PATCH, …) may be retried. */
  retryNonIdempotent: boolean;
  /** Whole-exchange deadline, ms (0: none); overrides the service's. */
  timeoutMs?: number;
  /** Send the client's Host upstream (true) or the upstream's own (false). */
  preserveHost: boolean;
  /** The upstream path (with query) for this request. */
  target(ctx: RequestContext): string;
  /** The consistent-hash key for this request, when the service balances by hash. */
  hashKey?(ctx: RequestContext): string | undefined;
}

// Hop-by-hop headers (RFC 9110 7.6.1) plus the obsolete proxy-connection: never passed on.
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
];

// Request headers never forwarded as they are: hop-by-hop ones, ones undici sets itself, and the
// ones the gateway rewrites (host, forwarding, request id).
const DROP_REQUEST = new Set([
  ...HOP_BY_HOP,
  'proxy-authorization',
  'expect',
  'host',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-request-id',
]);

const DROP_RESPONSE = new Set([...HOP_BY_HOP, 'proxy-authenticate', 'x-request-id']);

/** Header names listed in a `Connection` header, which are hop-by-hop too. */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  // The usual values name no extra header: skip the parse on the hot path.
  if (value === undefined || value === 'keep-alive' || value === 'close' || value === 'Keep-Alive')
    return undefined;
  const tokens = new Set<string>();
  for (const t of (Array.isArray(value) ? value.join(',') : value).split(',')) {
    const x = t.trim().toLowerCase();
    if (x !== '' && x !== 'close' && x !== 'keep-alive' && x !== 'upgrade') tokens.add(x);
  }
  return tokens.size > 0 ? tokens : undefined;
}

/** The headers sent upstream, as a flat `[name, value, …]` list. */
export function upstreamRequestHeaders(ctx: RequestContext, host: string | undefined): string[] {
  const raw = ctx.req.rawHeaders;
  const headers: IncomingHttpHeaders = ctx.req.headers;
  // The headers a client named in Connection were removed at the edge (src/http/edge.ts), before
  // the middlewares ran: removing them here would let a client strip what a middleware set.
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (DROP_REQUEST.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  if (typeof headers.te === 'string' && /(^|,)\s*trailers\s*(,|$)/i.test(headers.te))
    out.push('te', 'trailers');
  if (host !== undefined) out.push('host', host);
  out.push('x-request-id', ctx.requestId);
  const known = socketPeer(ctx.req.socket);
  pushForwardingHeaders(out, headers, {
    peer: ctx.peer ?? known.peer,
    forNode: ctx.peer === undefined || ctx.peer === known.peer ? known.forNode : undefined,
    trustedPeer: ctx.peerTrusted === true,
    protocol: ctx.protocol,
    host: headers.host,
  });
  return out;
}

/**
 * Whether a response header name is dropped: hop-by-hop (DROP_RESPONSE) or the upstream's own
 * x-request-id. Tested by length and first letter before any lower-casing because this runs for
 * every header of every response and almost every name is kept: a Set lookup of the lower-cased
 * name cost a string allocation per header.
 */
function dropsResponseHeader(name: string): boolean {
  const first = name.charCodeAt(0) | 0x20; // ASCII lower case
  switch (name.length) {
    case 2: // te
      return first === 0x74 && DROP_RESPONSE.has(name.toLowerCase());
    case 7: // trailer, upgrade
    case 10: // connection, keep-alive
    case 12: // x-request-id
    case 16: // proxy-connection
    case 17: // transfer-encoding
    case 18: // proxy-authenticate
      return (
        (first === 0x74 ||
          first === 0x75 ||
          first === 0x63 ||
          first === 0x6b ||
          first === 0x78 ||
          first === 0x70) &&
        DROP_RESPONSE.has(name.toLowerCase())
      );
    default:
      return false;
  }
}

/** Response headers for the client from undici's raw list, hop-by-hop ones removed. */
export function clientResponseHeaders(raw: Buffer[] | string[], requestId: string): string[] {
  const out: string[] = [];
  let extra: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    if (dropsResponseHeader(name)) {
      // Only a Connection header can name more hop-by-hop headers: parsed only when present.
      if (name.length === 10 && (name.charCodeAt(0) | 0x20) === 0x63)
        extra = connectionTokens(raw[i + 1]!.toString('latin1'));
      continue;
    }
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  if (extra !== undefined) {
    for (let i = out.length - 2; i >= 0; i -= 2) {
      if (extra.has(out[i]!.toLowerCase())) out.splice(i, 2);
    }
  }
  out.push('x-request-id', requestId);
  return out;
}

const CANCELLED = { outcome: 'cancelled', kind: 'reset' } as const;

/** The access log's name for the failure a retry answered (the `retry.on` condition). */
const RETRY_REASON: Record<AttemptOutcome, string> = {
  connectFailure: 'connect-failure',
  reset: 'reset',
  timeout: 'timeout',
  http5xx: '5xx',
  success: 'none',
  cancelled: 'none',
};

class RequestTimeout extends Error {
  readonly code = 'TRELLIS_TIMEOUT';
}

class ClientGone extends Error {
  readonly code = 'TRELLIS_CLIENT_GONE';
}

class ClientTooSlow extends Error {
  readonly code = 'TRELLIS_CLIENT_TOO_SLOW';
}

class HeadersTimeout extends Error {
  readonly code = 'UND_ERR_HEADERS_TIMEOUT';
}

/** The longest silence of a client's body when the listener sets none (nginx's default). */
const DEFAULT_BODY_TIMEOUT = 60_000;

/** Proxies one request to a service, with retries, timeouts and streaming both ways. */
export function forward(ctx: RequestContext, pool: ServicePool, options: ForwardOptions): void {
  new Exchange(ctx, pool, options).start();
}

function onExchangeTimeout(exchange: Exchange): void {
  exchange.timeout();
}

function onHeadersTimeout(exchange: Exchange): void {
  exchange.headersTimedOut();
}

function onBodyIdle(exchange: Exchange): void {
  exchange.bodyIdle();
}

function onClientClose(this: Exchange): void {
  this.clientClosed();
}

class Exchange implements Dispatcher.DispatchHandler {
  private readonly ctx: RequestContext;
  private readonly pool: ServicePool;
  private readonly options: ForwardOptions;
  private readonly hasBody: boolean;
  private readonly path: string;
  private upstream: Upstream | undefined;
  private tried: Set<Upstream> | undefined;
  private attempt = 0;
  private attemptStart = 0;
  private abortAttempt: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Our own headers timer, for requests with a body (undici's would start before the body is sent). */
  private headersTimer: NodeJS.Timeout | undefined;
  /** Watches the client's body for silence; cleared once the body has been read. */
  private bodyTimer: NodeJS.Timeout | undefined;
  private bodyBytesSeen = 0;
  /** The client's body has been read to its end (or there is none). */
  private bodySent: boolean;
  private gotHeaders = false;
  private clientSlow = false;
  private upstreamTimersStarted = false;
  /** Why each retry was made, for the access log (allocated on the first retry). */
  private retriedOn: string[] | undefined;
  /** The current attempt's answer is a retryable 5xx being read and dropped. */
  private discarding = false;
  private status = 0;
  private bytes = 0;
  private done = false;
  private timedOut = false;
  private clientGone = false;

  constructor(ctx: RequestContext, pool: ServicePool, options: ForwardOptions) {
    this.ctx = ctx;
    this.pool = pool;
    this.options = options;
    const h = ctx.req.headers;
    this.hasBody =
      h['transfer-encoding'] !== undefined ||
      (h['content-length'] !== undefined && h['content-length'] !== '0');
    this.path = options.target(ctx);
    this.bodySent = !this.hasBody;
  }

  start(): void {
    // 'close' is emitted once per response: `on` spares the once-wrapper per request.
    this.ctx.res.on('close', onClientClose.bind(this));
    if (this.bodySent) this.startUpstreamTimers();
    else {
      // The upstream's timeouts start once the client's body has been sent (as Envoy's do): a
      // slow client is the client's problem, answered 408 by its own body timeout, never a 504
      // charged to a healthy upstream.
      this.ctx.req.once('end', () => this.bodyEnded());
      const idle = this.ctx.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT;
      if (idle > 0) {
        this.bodyBytesSeen = this.ctx.req.socket?.bytesRead ?? 0;
        this.bodyTimer = setTimeout(onBodyIdle, idle, this);
      }
    }
    this.dispatch();
  }

  private startUpstreamTimers(): void {
    if (this.upstreamTimersStarted) return;
    this.upstreamTimersStarted = true;
    const timeout = this.options.timeoutMs ?? this.pool.timeouts.request;
    // Module-level callbacks with the exchange as argument: no closures allocated per request.
    if (timeout > 0) this.timer = setTimeout(onExchangeTimeout, timeout, this);
    if (this.hasBody && !this.gotHeaders && this.pool.timeouts.headers > 0)
      this.headersTimer = setTimeout(onHeadersTimeout, this.pool.timeouts.headers, this);
  }

  private bodyEnded(): void {
    this.bodySent = true;
    if (this.bodyTimer !== undefined) clearTimeout(this.bodyTimer);
    if (!this.done) this.startUpstreamTimers();
  }

  /** The client's body timer ran out: fine if bytes arrived since, or if upstream holds us back. */
  bodyIdle(): void {
    if (this.done || this.bodySent) return;
    const req = this.ctx.req;
    const read = req.socket?.bytesRead ?? 0;
    // Bytes waiting in our buffer mean the upstream is not reading: not the client's slowness.
    if (read !== this.bodyBytesSeen || req.readableLength > 0) {
      // An upstream that stops reading holds the exchange now: its timeouts run from here.
      if (req.readableLength > 0) this.startUpstreamTimers();
      this.bodyBytesSeen = read;
      this.bodyTimer = setTimeout(onBodyIdle, this.ctx.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT, this);
      return;
    }
    this.clientSlow = true;
    this.abortAttempt?.(new ClientTooSlow('the client did not send its body in time'));
  }

  /** The whole-request deadline passed. */
  timeout(): void {
    this.timedOut = true;
    this.abortAttempt?.(new RequestTimeout('request timeout'));
  }

  /** No response headers within headersTimeout of the body's end. */
  headersTimedOut(): void {
    if (!this.gotHeaders) this.abortAttempt?.(new HeadersTimeout('no response headers in time'));
  }

  /** The client's connection closed: stop the upstream exchange unless it already ended. */
  clientClosed(): void {
    if (this.done) return;
    this.clientGone = true;
    this.abortAttempt?.(new ClientGone('client closed the connection'));
  }

  private onDrain: (() => void) | undefined;

  private dispatch(): void {
    const ctx = this.ctx;
    const hashKey = this.options.hashKey?.(ctx);
    const upstream = this.pool.pick(hashKey, this.tried);
    if (upstream === undefined) {
      this.fail(
        503,
        'TRELLIS_E_NO_UPSTREAM',
        `service "${this.pool.name}" has no upstream to send the request to`,
      );
      return;
    }
    this.upstream = upstream;
    this.attempt++;
    this.discarding = false;
    this.abortAttempt = undefined;
    ctx.upstream = upstream.id;
    const host = this.options.preserveHost ? ctx.req.headers.host : upstream.origin.host;
    this.pool.begin(upstream);
    this.attemptStart = performance.now();
    upstream.dispatcher.dispatch(
      {
        path: this.path,
        method: ctx.req.method as Dispatcher.HttpMethod,
        headers: upstreamRequestHeaders(ctx, host),
        body: this.hasBody ? ctx.req : null,
        // With a body, our own timer starts at the body's end; undici's would start now.
        headersTimeout: this.hasBody ? 0 : this.pool.timeouts.headers,
      },
      this,
    );
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortAttempt = abort;
    if (this.timedOut) abort(new RequestTimeout('request timeout'));
    else if (this.clientGone) abort(new ClientGone('client closed the connection'));
    else if (this.clientSlow) abort(new ClientTooSlow('the client did not send its body in time'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) {
      relayInformational(this.ctx, statusCode, rawHeaders);
      return true;
    }
    this.gotHeaders = true;
    if (this.headersTimer !== undefined) clearTimeout(this.headersTimer);
    this.status = statusCode;
    if (
      (statusCode === 502 || statusCode === 503 || statusCode === 504) &&
      this.mayRetry('http5xx', statusCode)
    ) {
      this.discarding = true;
      return true;
    }
    const ctx = this.ctx;
    ctx.upstreamMs = performance.now() - this.attemptStart;
    this.resumeUpstream = resume;
    ctx.res.writeHead(statusCode, clientResponseHeaders(rawHeaders, ctx.requestId));
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.discarding) return true;
    this.bytes += chunk.length;
    if (this.ctx.res.write(chunk)) return true;
    // Made on the first backpressure only: most answers fit the socket buffer.
    this.onDrain ??= () => this.resumeUpstream?.();
    this.ctx.res.once('drain', this.onDrain);
    return false;
  }

  onComplete(): void {
    const upstream = this.upstream!;
    this.pool.end(
      upstream,
      this.status >= 500 ? 'http5xx' : 'success',
      performance.now() - this.attemptStart,
    );
    if (this.discarding) {
      this.retryLater();
      return;
    }
    this.finish();
    this.ctx.res.end();
  }

  onError(err: Error): void {
    const upstream = this.upstream!;
    const { outcome, kind } = this.clientGone || this.clientSlow ? CANCELLED : failureOf(err);
    this.pool.end(upstream, outcome, performance.now() - this.attemptStart);
    if (this.clientGone) {
      this.finish();
      return;
    }
    if (this.clientSlow) {
      // The rest of the body will never be read: the connection cannot be reused.
      this.ctx.res.shouldKeepAlive = false;
      this.fail(408, 'TRELLIS_E_BODY_TIMEOUT', 'the request body was not received in time');
      return;
    }
    const res = this.ctx.res;
    if (res.headersSent && !this.discarding) {
      // The answer has begun: no status can be sent any more, so cut it to show it is broken.
      this.finish();
      res.destroy();
      return;
    }
    if (!this.timedOut && this.mayRetry(outcome, undefined)) {
      this.retryLater();
      return;
    }
    if (this.timedOut || kind === 'timeout') {
      this.fail(504, 'TRELLIS_E_UPSTREAM_TIMEOUT', `service "${this.pool.name}" did not answer in time`);
    } else if (kind === 'connect') {
      this.fail(502, 'TRELLIS_E_UPSTREAM_UNAVAILABLE', `service "${this.pool.name}" could not be reached`);
    } else {
      this.fail(
        502,
        'TRELLIS_E_UPSTREAM_RESET',
        `service "${this.pool.name}" closed the connection without an answer`,
      );
    }
  }

  private mayRetry(outcome: AttemptOutcome, status: number | undefined): boolean {
    if (this.timedOut || this.clientGone || this.clientSlow) return false;
    // The shared rule set decides; what only the streaming form knows is whether the client's
    // body has started to be read: a stream cannot be replayed.
    const retry = retryAllowed(this.pool, {
      method: this.ctx.req.method ?? 'GET',
      attempt: this.attempt,
      outcome,
      status,
      retryNonIdempotent: this.options.retryNonIdempotent,
      bodySent: this.hasBody && this.ctx.req.readableDidRead,
    });
    if (retry) {
      this.retriedOn ??= [];
      this.retriedOn.push(status === undefined ? RETRY_REASON[outcome] : String(status));
    }
    return retry;
  }

  private retryLater(): void {
    this.tried ??= new Set();
    this.tried.add(this.upstream!);
    const delay = this.pool.retry.backoffMs(this.attempt);
    const next = () => {
      if (this.timedOut)
        this.fail(504, 'TRELLIS_E_UPSTREAM_TIMEOUT', `service "${this.pool.name}" did not answer in time`);
      else if (this.clientGone) this.finish();
      else this.dispatch();
    };
    if (delay > 0) setTimeout(next, delay);
    else setImmediate(next);
  }

  private fail(status: number, code: string, detail: string): void {
    this.finish();
    this.ctx.errorCode = code;
    sendProblem(this.ctx, { status, code, detail });
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.headersTimer !== undefined) clearTimeout(this.headersTimer);
    if (this.bodyTimer !== undefined) clearTimeout(this.bodyTimer);
    this.ctx.attempts = this.attempt;
    if (this.retriedOn !== undefined) this.ctx.retriedOn = this.retriedOn;
    this.ctx.responseBytes = this.bytes;
  }
}

/**
 * Relays a 1xx interim answer of the origin to the client before the final one (RFC 9110 15.2):
 * 103 Early Hints with its headers, 102 Processing. 100 Continue is never relayed (the gateway
 * does not forward Expect, so the client did not ask), nor is any 1xx to an HTTP/1.0 client.
 * Written with node's informational-response API, so none of it reaches the response phase
 * (nothing is cached) and the final answer follows on the same response.
 */
function relayInformational(ctx: RequestContext, status: number, raw: Buffer[]): void {
  const res = ctx.res;
  if (ctx.req.httpVersionMinor < 1 || res.headersSent) return;
  if (status === 102) {
    res.writeProcessing();
    return;
  }
  if (status !== 103) return;
  const hints: Record<string, string | string[]> = {};
  const headers = clientResponseHeaders(raw, ctx.requestId);
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (name === 'x-request-id') continue;
    const prev = hints[name];
    hints[name] =
      prev === undefined ? headers[i + 1]! : [...(Array.isArray(prev) ? prev : [prev]), headers[i + 1]!];
  }
  // Node validates each Link value alone: a combined `<a>; rel=x, <b>; rel=y` goes as a list.
  const link = hints.link;
  if (link !== undefined)
    hints.link = (Array.isArray(link) ? link : [link]).flatMap((v) => v.split(/,\s*(?=<)/));
  try {
    res.writeEarlyHints(hints);
  } catch (err) {
    // A Link value node refuses to write: the hint is dropped, the final answer still follows.
    ctx.log.debug({ err }, 'early hints from the origin not relayed');
  }
}
