import type { Dispatcher } from 'undici';
import { HedgeCancelled, type HedgeHost, HedgeLeg, type HedgeOptions } from './exchange/hedge.js';
import type { ExchangeHooks, ForwardCall } from './exchange/hooks.js';
import { KeptAnswer } from './exchange/kept-answer.js';
import { failureOf, tlsFailureOf, upstreamTlsProblem } from './exchange/outcome.js';
import { retryAfterOfRaw } from './exchange/retry-after.js';
import { retryRefusal } from './exchange/retry-rules.js';
import { clientResponseHeaders, relayInformational, upstreamRequestHeaders } from './forward-headers.js';
import { type Problem, sendProblem } from './problem.js';
import { nextTraceparent } from './trace.js';
import type { RequestContext } from './types.js';
import type { AttemptOutcome, ServicePool, Upstream } from './upstream/types.js';

export type { HedgeOptions } from './exchange/hedge.js';
export type { ExchangeHooks, ForwardCall } from './exchange/hooks.js';
export { outcomeOf } from './exchange/outcome.js';
export { clientResponseHeaders, upstreamRequestHeaders } from './forward-headers.js';

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

  // The options below are the ambassador's policies; the proxy handler sets none of them, and
  // each costs the exchange one test of an absent field when unset.

  /**
   * Count `timeoutMs` from the request's arrival, not from the end of its body: a total deadline
   * that includes what the caller did first (a bulkhead queue, a buffered body, a token). No
   * retry starts that could not begin before it.
   */
  deadlineFromArrival?: boolean;
  /** Deadline of one attempt until its response head, ms (0 or absent: none). */
  perTryTimeoutMs?: number;
  /** Header telling the upstream how many ms its attempt has left (absent: none is sent). */
  deadlineHeader?: string;
  /** Continue the client's W3C trace (or start one) with a new span id on every attempt. */
  traceparent?: boolean;
  /** Retry 429 answers too (when `retry.on` names 429), after at least their Retry-After. */
  retryAfter?: boolean;
  /**
   * Request headers (lower case) set on every attempt by the exchange or the caller, so the
   * client's are dropped: `traceparent`, `deadlineHeader`, the names in `ForwardCall.headers`.
   */
  replacedHeaders?: ReadonlySet<string>;
  /** Per-attempt policies: admission (breakers), outcome reporting, metrics. */
  hooks?: ExchangeHooks;
  /** Hedging: another attempt to another upstream when the first has no head after a delay. */
  hedge?: HedgeOptions;
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

/** The per-try deadline (until the response head) cut the attempt: a timeout, retryable. */
class PerTryTimeout extends Error {
  readonly code = 'TRELLIS_TIMEOUT';
}

/** The longest silence of a client's body when the listener sets none (nginx's default). */
const DEFAULT_BODY_TIMEOUT = 60_000;

/**
 * Proxies one request to a service, with retries, timeouts and streaming both ways; `call`
 * carries what this request adds (a body read already, credentials).
 */
export function forward(
  ctx: RequestContext,
  pool: ServicePool,
  options: ForwardOptions,
  call?: ForwardCall,
): void {
  new Exchange(ctx, pool, options, call).start();
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

function onPerTryTimeout(exchange: Exchange): void {
  exchange.perTryExpired();
}

function onHedgeDue(exchange: Exchange): void {
  exchange.hedgeDue();
}

function onClientClose(this: Exchange): void {
  this.clientClosed();
}

class Exchange implements Dispatcher.DispatchHandler, HedgeHost {
  private readonly ctx: RequestContext;
  private readonly pool: ServicePool;
  private readonly options: ForwardOptions;
  private readonly call: ForwardCall | undefined;
  /** The client's body streams upstream (it cannot be sent twice). */
  private readonly hasBody: boolean;
  private readonly path: string;
  private upstream: Upstream | undefined;
  private tried: Set<Upstream> | undefined;
  private attempt = 0;
  private attemptStart = 0;
  private abortAttempt: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** When the whole exchange must be over (performance.now()), with `deadlineFromArrival`. */
  private deadline = Number.POSITIVE_INFINITY;
  /** The current attempt's per-try timer, until its response head. */
  private tryTimer: NodeJS.Timeout | undefined;
  private tryExpired = false;
  /** The current attempt's admission ticket (`hooks.admit`). */
  private ticket = 0;
  /** Every upstream refused admission: answered with `hooks.refused`. */
  private allRefused = false;
  /** The wait before the retry decided last. */
  private delay = 0;
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
  /** Hedging applies to this call (`options.hedge`, its method, no streamed body). */
  private readonly hedgeable: boolean;
  private hedgeTimer: NodeJS.Timeout | undefined;
  private hedges = 0;
  /** Hedged attempts still racing (allocated by the first hedge). */
  private legs: HedgeLeg[] | undefined;
  /** The hedge whose head came first: its answer is the client's. */
  private winner: HedgeLeg | undefined;
  /** The exchange's own attempt is out (dispatched, not yet ended). */
  private primaryOut = false;
  /** A hedge won: the exchange's own attempt lost and is being aborted. */
  private superseded = false;
  /** The own attempt failed while hedges race: what to do if they all fail too. */
  private deferred: (() => void) | undefined;
  /** The own attempt's failed answer was dropped while hedges raced, its retry not yet decided. */
  private undecided = false;
  /** The own attempt's failed answer being dropped while hedges race, kept whole. */
  private keeping: KeptAnswer | undefined;
  /**
   * The last failed answer dropped during a hedge race (the own attempt's or a hedge's): the
   * client's answer if no attempt succeeds and no retry follows, rather than a made-up problem.
   */
  private kept: KeptAnswer | undefined;
  /** Set by `pickAdmitted`: the admission ticket of the upstream it returned. */
  private picked = 0;

  constructor(
    ctx: RequestContext,
    pool: ServicePool,
    options: ForwardOptions,
    call: ForwardCall | undefined,
  ) {
    this.ctx = ctx;
    this.pool = pool;
    this.options = options;
    this.call = call;
    const h = ctx.req.headers;
    this.hasBody =
      call?.body === undefined &&
      (h['transfer-encoding'] !== undefined ||
        (h['content-length'] !== undefined && h['content-length'] !== '0'));
    this.path = options.target(ctx);
    this.bodySent = !this.hasBody;
    const hedge = options.hedge;
    this.hedgeable =
      hedge !== undefined &&
      !this.hasBody &&
      hedge.methods.has(ctx.req.method ?? 'GET') &&
      (call?.body === undefined || call.body.length === 0 || hedge.withBody);
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
    let timeout = this.options.timeoutMs ?? this.pool.timeouts.request;
    if (timeout > 0 && this.options.deadlineFromArrival === true) {
      this.deadline = this.ctx.startedAt + timeout;
      timeout = Math.max(1, this.deadline - performance.now());
    }
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
    if (this.primaryOut) this.abortAttempt?.(new RequestTimeout('request timeout'));
    if (this.legs !== undefined || this.winner !== undefined)
      this.abortLegs(new RequestTimeout('request timeout'));
  }

  /** No response headers within headersTimeout of the body's end. */
  headersTimedOut(): void {
    if (!this.gotHeaders) this.abortAttempt?.(new HeadersTimeout('no response headers in time'));
  }

  /** The attempt's per-try deadline passed before its response head. */
  perTryExpired(): void {
    this.tryTimer = undefined;
    this.tryExpired = true;
    this.abortAttempt?.(new PerTryTimeout('per-try timeout'));
  }

  /** The client's connection closed: stop the upstream exchange unless it already ended. */
  clientClosed(): void {
    if (this.done) return;
    this.clientGone = true;
    if (this.primaryOut) this.abortAttempt?.(new ClientGone('client closed the connection'));
    if (this.legs !== undefined || this.winner !== undefined)
      this.abortLegs(new HedgeCancelled('client left'));
  }

  private onDrain: (() => void) | undefined;

  private dispatch(): void {
    const ctx = this.ctx;
    const options = this.options;
    const hashKey = options.hashKey?.(ctx);
    const hooks = options.hooks;
    const upstream =
      hooks === undefined
        ? this.pool.pick(hashKey, this.tried)
        : this.pickAdmitted(hooks, hashKey, this.tried);
    if (upstream === undefined) {
      if (this.allRefused) this.answer(hooks!.refused(this.pool));
      else
        this.fail(
          503,
          'TRELLIS_E_NO_UPSTREAM',
          `service "${this.pool.name}" has no upstream to send the request to`,
        );
      return;
    }
    this.upstream = upstream;
    this.ticket = this.picked;
    this.attempt++;
    this.discarding = false;
    this.keeping = undefined;
    this.abortAttempt = undefined;
    this.tryExpired = false;
    ctx.upstream = upstream.id;
    this.send(upstream, this, true);
    this.primaryOut = true;
    if (this.hedgeable && this.hedges < options.hedge!.maxHedges) this.armHedge();
  }

  /** Builds one attempt's headers and dispatches it to `upstream` with `handler`. */
  private send(upstream: Upstream, handler: Dispatcher.DispatchHandler, own: boolean): void {
    const ctx = this.ctx;
    const options = this.options;
    const host = options.preserveHost ? ctx.req.headers.host : upstream.origin.host;
    const headers = upstreamRequestHeaders(ctx, host, options.replacedHeaders);
    if (options.perTryTimeoutMs !== undefined || options.deadlineHeader !== undefined) {
      // The attempt's time: its per-try deadline, never past the whole exchange's.
      const left = this.deadline - performance.now();
      const perTry = options.perTryTimeoutMs ?? 0;
      const budget = perTry > 0 ? Math.min(perTry, left) : left;
      if (perTry > 0 && own) this.tryTimer = setTimeout(onPerTryTimeout, Math.max(1, budget), this);
      if (options.deadlineHeader !== undefined && Number.isFinite(budget))
        headers.push(options.deadlineHeader, String(Math.max(1, Math.floor(budget))));
    }
    if (options.traceparent === true)
      headers.push('traceparent', nextTraceparent(ctx.req.headers.traceparent));
    const added = this.call?.headers;
    if (added !== undefined) for (const name in added) headers.push(name, added[name]!);
    this.pool.begin(upstream);
    if (own) this.attemptStart = performance.now();
    upstream.dispatcher.dispatch(
      {
        path: this.path,
        method: ctx.req.method as Dispatcher.HttpMethod,
        headers,
        body: this.call?.body ?? (this.hasBody ? ctx.req : null),
        // With a body, our own timer starts at the body's end; undici's would start now.
        headersTimeout: this.hasBody ? 0 : this.pool.timeouts.headers,
      },
      handler,
    );
  }

  private armHedge(): void {
    const delay = this.options.hedge!.delayMs();
    // A hedge that could not start before the deadline would only add load.
    if (performance.now() + delay >= this.deadline) return;
    this.hedgeTimer = setTimeout(onHedgeDue, Math.max(1, delay), this);
  }

  /**
   * The hedge delay passed without a response head: another attempt to an upstream not tried
   * yet, if the retry budget has one to spare (a hedge is an extra attempt, like a retry).
   */
  hedgeDue(): void {
    this.hedgeTimer = undefined;
    if (this.done || this.gotHeaders || this.discarding || this.timedOut || this.clientGone) return;
    if (!this.primaryOut) return;
    const busy = new Set<Upstream>(this.tried);
    busy.add(this.upstream!);
    for (const leg of this.legs ?? []) busy.add(leg.upstream);
    const hooks = this.options.hooks;
    const hashKey = this.options.hashKey?.(this.ctx);
    const candidate = this.pool.pick(hashKey, busy);
    // Only another upstream is worth hedging to (the pool widens to a busy one rather than none).
    if (candidate === undefined || busy.has(candidate)) return;
    if (this.pool.retry.chargeHedge?.() === false) {
      this.options.hedge!.counted('budget');
      return;
    }
    let upstream: Upstream | undefined = candidate;
    this.picked = 0;
    if (hooks !== undefined) {
      this.picked = hooks.admit(candidate);
      if (this.picked < 0) {
        upstream = this.pickAdmitted(hooks, hashKey, busy);
        if (upstream !== undefined && busy.has(upstream)) upstream = undefined;
        this.allRefused = false;
      }
    }
    if (upstream === undefined) return;
    this.hedges++;
    this.attempt++;
    const leg = new HedgeLeg(this, upstream, this.picked);
    this.legs ??= [];
    this.legs.push(leg);
    this.options.hedge!.counted('sent');
    this.send(upstream, leg, false);
    if (this.hedges < this.options.hedge!.maxHedges) this.armHedge();
  }

  isRetryableAnswer(status: number): boolean {
    return isRetryableAnswer(status, this.options);
  }

  /** A hedge's head came first: it is the answer; the own attempt and the other hedges are aborted. */
  legWon(leg: HedgeLeg, status: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (this.done || this.gotHeaders) return false;
    this.gotHeaders = true;
    this.winner = leg;
    this.legs = this.legs!.filter((l) => l !== leg);
    if (this.headersTimer !== undefined) clearTimeout(this.headersTimer);
    if (this.tryTimer !== undefined) this.clearTryTimer();
    this.clearHedgeTimer();
    this.deferred = undefined;
    if (this.primaryOut) {
      this.superseded = true;
      this.abortAttempt?.(new HedgeCancelled('a hedge answered first'));
    }
    for (const other of this.legs) other.abort();
    this.options.hedge!.counted('won');
    const ctx = this.ctx;
    ctx.upstream = leg.upstream.id;
    ctx.upstreamMs = performance.now() - leg.startedAt;
    this.status = status;
    this.resumeUpstream = resume;
    this.options.hooks?.answered(ctx, status);
    ctx.res.writeHead(status, clientResponseHeaders(rawHeaders, ctx.requestId));
    return true;
  }

  winnerEnded(leg: HedgeLeg, err: Error | undefined): void {
    const outcome = err === undefined ? (this.status >= 500 ? 'http5xx' : 'success') : failureOf(err).outcome;
    this.pool.end(leg.upstream, outcome, performance.now() - leg.startedAt);
    this.options.hooks?.attemptEnded(leg.upstream, outcome, leg.ticket, 0);
    this.finish();
    if (err === undefined) this.ctx.res.end();
    else this.ctx.res.destroy();
  }

  legEnded(leg: HedgeLeg, outcome: AttemptOutcome, dropped: number, kept?: KeptAnswer): void {
    this.pool.end(leg.upstream, outcome, performance.now() - leg.startedAt);
    this.options.hooks?.attemptEnded(leg.upstream, outcome, leg.ticket, dropped);
    if (this.legs === undefined) return;
    if (kept !== undefined && !this.done) this.kept = kept;
    const i = this.legs.indexOf(leg);
    if (i >= 0) this.legs.splice(i, 1);
    if (outcome !== 'cancelled') {
      this.tried ??= new Set();
      this.tried.add(leg.upstream);
    }
    // The own attempt failed first and every hedge has now failed too: carry on as it would have.
    if (this.legs.length === 0 && this.deferred !== undefined && this.winner === undefined) {
      const next = this.deferred;
      this.deferred = undefined;
      next();
    }
  }

  /** Whether hedges are still racing (the own attempt's failure then waits for them). */
  private get racing(): boolean {
    return this.legs !== undefined && this.legs.length > 0;
  }

  private abortLegs(err: Error): void {
    this.winner?.abort(err);
    for (const leg of this.legs ?? []) leg.abort(err);
  }

  private clearHedgeTimer(): void {
    if (this.hedgeTimer === undefined) return;
    clearTimeout(this.hedgeTimer);
    this.hedgeTimer = undefined;
  }

  /**
   * An upstream whose admission (its breaker) lets this attempt through. The pool's pick widens
   * to excluded upstreams rather than return none, so refused ones are skipped here; when every
   * upstream refuses, none (and `allRefused`).
   */
  private pickAdmitted(
    hooks: ExchangeHooks,
    hashKey: string | undefined,
    tried: ReadonlySet<Upstream> | undefined,
  ): Upstream | undefined {
    const n = this.pool.upstreams.length;
    let refused: Set<Upstream> | undefined;
    let exclude = tried;
    for (let i = 0; i <= n; i++) {
      const u = this.pool.pick(hashKey, exclude);
      if (u === undefined) return undefined;
      if (refused === undefined || !refused.has(u)) {
        const ticket = hooks.admit(u);
        if (ticket >= 0) {
          this.picked = ticket;
          return u;
        }
        refused ??= new Set();
        refused.add(u);
      }
      if (refused.size >= n) break;
      exclude = new Set(tried === undefined ? refused : [...tried, ...refused]);
    }
    this.allRefused = true;
    return undefined;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortAttempt = abort;
    if (this.timedOut) abort(new RequestTimeout('request timeout'));
    else if (this.clientGone) abort(new ClientGone('client closed the connection'));
    else if (this.clientSlow) abort(new ClientTooSlow('the client did not send its body in time'));
    else if (this.tryExpired) abort(new PerTryTimeout('per-try timeout'));
  }

  private clearTryTimer(): void {
    if (this.tryTimer === undefined) return;
    clearTimeout(this.tryTimer);
    this.tryTimer = undefined;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (this.superseded) return false;
    if (statusCode < 200) {
      relayInformational(this.ctx, statusCode, rawHeaders);
      return true;
    }
    this.gotHeaders = true;
    if (this.headersTimer !== undefined) clearTimeout(this.headersTimer);
    if (this.tryTimer !== undefined) this.clearTryTimer();
    this.status = statusCode;
    if (isRetryableAnswer(statusCode, this.options)) {
      if (this.racing) {
        // A failed answer while hedges race: dropped, and the hedges may still answer well.
        this.gotHeaders = false;
        this.discarding = true;
        this.undecided = true;
        this.keeping = new KeptAnswer(
          statusCode,
          rawHeaders,
          this.upstream!,
          performance.now() - this.attemptStart,
        );
        return true;
      }
      if (this.mayRetry('http5xx', statusCode, rawHeaders)) {
        this.discarding = true;
        return true;
      }
    }
    if (this.legs !== undefined) {
      this.clearHedgeTimer();
      for (const leg of this.legs) leg.abort();
    }
    const ctx = this.ctx;
    ctx.upstreamMs = performance.now() - this.attemptStart;
    this.resumeUpstream = resume;
    this.options.hooks?.answered(ctx, statusCode);
    ctx.res.writeHead(statusCode, clientResponseHeaders(rawHeaders, ctx.requestId));
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.discarding || this.superseded) {
      this.keeping?.add(chunk);
      return true;
    }
    return this.relay(chunk);
  }

  relay(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    if (this.ctx.res.write(chunk)) return true;
    // Made on the first backpressure only: most answers fit the socket buffer.
    this.onDrain ??= () => this.resumeUpstream?.();
    this.ctx.res.once('drain', this.onDrain);
    return false;
  }

  onComplete(): void {
    const upstream = this.upstream!;
    this.primaryOut = false;
    if (this.superseded) {
      this.ended(upstream, 'cancelled', 0);
      return;
    }
    const outcome = this.status >= 500 ? 'http5xx' : 'success';
    this.ended(upstream, outcome, this.discarding ? this.status : 0);
    if (this.discarding) {
      this.clearHedgeTimer();
      if (!this.undecided) {
        // The retry was decided (and charged) when the head came.
        this.retryLater();
        return;
      }
      // Dropped while hedges raced: they answer for this call now; if they have failed (or
      // fail) too, the retry rules decide as they would have at the head.
      this.undecided = false;
      if (this.keeping?.overflowed === false) this.kept = this.keeping;
      this.keeping = undefined;
      const status = this.status;
      const next = () => {
        if (this.clientGone) this.finish();
        else if (this.timedOut)
          this.fail(504, 'TRELLIS_E_UPSTREAM_TIMEOUT', `service "${this.pool.name}" did not answer in time`);
        else if (this.mayRetry('http5xx', status)) this.retryLater();
        else if (this.kept !== undefined) this.relayKept();
        else
          this.fail(
            status,
            'TRELLIS_E_UPSTREAM_UNAVAILABLE',
            `service "${this.pool.name}" answered ${status}`,
          );
      };
      if (this.racing) this.deferred = next;
      else next();
      return;
    }
    this.finish();
    this.ctx.res.end();
  }

  private ended(upstream: Upstream, outcome: AttemptOutcome, dropped: number): void {
    this.pool.end(upstream, outcome, performance.now() - this.attemptStart);
    this.options.hooks?.attemptEnded(upstream, outcome, this.ticket, dropped);
  }

  onError(err: Error): void {
    const upstream = this.upstream!;
    this.primaryOut = false;
    if (this.tryTimer !== undefined) this.clearTryTimer();
    if (this.superseded) {
      this.ended(upstream, 'cancelled', 0);
      return;
    }
    const { outcome, kind } = this.clientGone || this.clientSlow ? CANCELLED : failureOf(err);
    this.ended(upstream, outcome, 0);
    this.clearHedgeTimer();
    if (this.racing && !this.clientGone && !this.clientSlow) {
      // Hedges are out: they answer for this call now; if they fail too, the own rules decide.
      this.deferred = () => this.afterFailure(err, upstream, outcome, kind);
      return;
    }
    this.afterFailure(err, upstream, outcome, kind);
  }

  /** What an attempt that got no answer leads to: a retry, or the client's problem. */
  private afterFailure(
    err: Error,
    upstream: Upstream,
    outcome: AttemptOutcome,
    kind: 'timeout' | 'connect' | 'reset',
  ): void {
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
    // A hedge answered a failure before: the upstream's own answer beats a made-up problem.
    if (this.kept !== undefined && !this.timedOut) {
      this.relayKept();
      return;
    }
    const tlsReason = kind === 'timeout' || this.timedOut ? undefined : tlsFailureOf(err, upstream);
    if (this.timedOut || kind === 'timeout') {
      this.fail(504, 'TRELLIS_E_UPSTREAM_TIMEOUT', `service "${this.pool.name}" did not answer in time`);
    } else if (tlsReason !== undefined) {
      this.answer(upstreamTlsProblem(this.pool.name, upstream.id, tlsReason));
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

  /** Whether to retry after this failure; sets `delay`, the wait before the next attempt. */
  private mayRetry(outcome: AttemptOutcome, status: number | undefined, raw?: Buffer[]): boolean {
    if (this.timedOut || this.clientGone || this.clientSlow) return false;
    const options = this.options;
    // The shared rule set decides; what only the streaming form knows is whether the client's
    // body has started to be read: a stream cannot be replayed.
    const refusal = retryRefusal(this.pool, {
      method: this.ctx.req.method ?? 'GET',
      attempt: this.attempt,
      outcome,
      status,
      retryNonIdempotent: options.retryNonIdempotent,
      bodySent: this.hasBody && this.ctx.req.readableDidRead,
      retry429: options.retryAfter === true,
    });
    if (refusal !== undefined) {
      if (refusal !== 'not-retryable') options.hooks?.retryRefused(refusal);
      return false;
    }
    let delay = this.pool.retry.backoffMs(this.attempt);
    if (options.retryAfter === true && raw !== undefined) {
      const after = retryAfterOfRaw(raw);
      if (after !== undefined && after > delay) delay = after;
    }
    // A retry that could not start before the deadline would only turn this answer into a 504.
    if (performance.now() + delay >= this.deadline) {
      options.hooks?.retryRefused('deadline');
      return false;
    }
    this.delay = delay;
    const reason = status === undefined ? RETRY_REASON[outcome] : String(status);
    this.retriedOn ??= [];
    this.retriedOn.push(reason);
    options.hooks?.retried(reason);
    return true;
  }

  /**
   * No attempt succeeded and no retry follows: the client gets the last failed answer an
   * upstream gave during the hedge race, as it was (status, headers, body).
   */
  private relayKept(): void {
    const kept = this.kept!;
    this.kept = undefined;
    const ctx = this.ctx;
    ctx.upstream = kept.upstream.id;
    ctx.upstreamMs = kept.headMs;
    this.status = kept.status;
    const body = kept.body();
    this.bytes = body.length;
    this.options.hooks?.answered(ctx, kept.status);
    this.finish();
    ctx.res.writeHead(kept.status, clientResponseHeaders(kept.rawHeaders, ctx.requestId));
    ctx.res.end(body);
  }

  private retryLater(): void {
    // A retry follows: its own answer (or failure) is the call's, as without hedging.
    this.kept = undefined;
    this.tried ??= new Set();
    this.tried.add(this.upstream!);
    const delay = this.delay;
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
    this.answer({ status, code, detail });
  }

  private answer(problem: Problem): void {
    this.ctx.errorCode = problem.code;
    this.options.hooks?.answered(this.ctx, problem.status);
    this.finish();
    sendProblem(this.ctx, problem);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.hedgeTimer !== undefined) this.clearHedgeTimer();
    if (this.legs !== undefined) for (const leg of this.legs) leg.abort();
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.headersTimer !== undefined) clearTimeout(this.headersTimer);
    if (this.bodyTimer !== undefined) clearTimeout(this.bodyTimer);
    if (this.tryTimer !== undefined) this.clearTryTimer();
    this.ctx.attempts = this.attempt;
    if (this.retriedOn !== undefined) this.ctx.retriedOn = this.retriedOn;
    this.ctx.responseBytes = this.bytes;
    this.options.hooks?.done(this.ctx);
  }
}

/** A failed answer the exchange may retry instead of relaying it: 502/503/504, and 429 when opted in. */
function isRetryableAnswer(status: number, options: ForwardOptions): boolean {
  return (
    status === 502 || status === 503 || status === 504 || (status === 429 && options.retryAfter === true)
  );
}
