import type { IncomingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { BulkheadPolicy, BulkheadRejectedError, TaskCancelledError } from 'cockatiel';
import type { Dispatcher } from 'undici';
import type { HandlerInstance } from '../handlers/types.js';
import { outcomeOf, upstreamRequestHeaders } from '../http/forward.js';
import { sendProblem } from '../http/problem.js';
import type { RequestContext } from '../http/types.js';
import { ServiceRetryPolicy } from '../http/upstream/retry.js';
import type { AttemptOutcome, ServicePool, Upstream } from '../http/upstream/types.js';
import { BrokenCircuitError, Cancelled, type UpstreamBreakers } from './breaker.js';
import { type CredentialSource, TokenUnavailable } from './credentials.js';
import type { AmbassadorMetrics } from './metrics.js';
import type { RemoteConfig } from './schema.js';
import { nextTraceparent } from './trace.js';

/**
 * One call of the local client to a remote service, through the ambassador's policies, in this
 * order (outermost first):
 *
 * 1. total deadline: starts when the call arrives; no attempt starts after it, and it cuts the
 *    attempt, the backoff or the bulkhead queue it finds running;
 * 2. bulkhead: a slot among `maxConcurrent`, or a place in the bounded queue, or 503 at once;
 * 3. the body, buffered up to `maxBodySize` so every attempt sends it whole (chunked included);
 * 4. per attempt: an upstream from the shared pool (its balancer, outlier ejection), skipping
 *    those whose breaker refuses; the per-try deadline until the response head; the time left
 *    sent upstream in `deadlineHeader`;
 * 5. retry: the pool's retry policy decides (attempts, idempotent or opted in, the condition in
 *    `retry.on`, the retry budget, charged at the decision so retries waiting in backoff count),
 *    after the jittered backoff or the answer's Retry-After, whichever is longer, and only if
 *    the next attempt can start before the deadline.
 *
 * Nothing is retried once a response byte went to the client: a failed answer (502/503/504,
 * 429) is read and dropped before deciding, any other answer is relayed as it streams.
 *
 * Why not the proxy's streaming exchange (`forward`): it streams the request body (so it can
 * never replay one), knows no per-try deadline, Retry-After or breaker, and is the gateway's hot
 * path. This loop uses the same pool contract (pick, begin/end feeding ejection and the budget),
 * the same header rules (`upstreamRequestHeaders`) and outcome mapping.
 */

/** Why the last attempt produced no answer to relay. */
type Failure = 'connect' | 'reset' | 'timeout';

/** A retryable answer (5xx, 429) raised through the breaker so it counts as a failure. */
class FailedAnswer extends Error {
  constructor(readonly response: Dispatcher.ResponseData) {
    super(`status ${response.statusCode}`);
  }
}

/** The per-try deadline cut the attempt. */
class PerTryTimeout extends Error {
  readonly code = 'TRELLIS_TIMEOUT';
}

/** The call's deadline (or the client leaving) cut the attempt. */
class CallOver extends Error {
  readonly code = 'TRELLIS_TIMEOUT';
}

// Request headers the ambassador sets itself on every attempt.
const REPLACED = new Set(['traceparent', 'content-length']);

// Response headers never passed on: hop-by-hop (RFC 9110 7.6.1) and the upstream's request id.
const DROP_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'x-request-id',
]);

/** The caller gave up: says nothing about the upstream, good or bad. */
const CANCELLED: AttemptOutcome = 'cancelled';

/** What a remote's handler needs besides its configuration. */
export interface RemoteDeps {
  pool: ServicePool;
  metrics: AmbassadorMetrics;
  breakers: UpstreamBreakers;
  /** Headers added to every attempt (API keys, the OAuth2 token), after the client's. */
  credentials?: CredentialSource;
}

/** The handler of one remote service. */
export function remoteHandler(remote: RemoteConfig, deps: RemoteDeps): HandlerInstance {
  const bulkhead = new BulkheadPolicy(remote.bulkhead.maxConcurrent, remote.bulkhead.maxQueue);
  bulkhead.onReject(() => deps.metrics.bulkheadRejected());
  return (ctx) => new Call(ctx, remote, deps, bulkhead).run();
}

class Call {
  private readonly started = performance.now();
  private readonly deadline: number;
  /** Aborted when the call is over: deadline passed or client gone. */
  private readonly over = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private clientGone = false;

  constructor(
    private readonly ctx: RequestContext,
    private readonly remote: RemoteConfig,
    private readonly deps: RemoteDeps,
    private readonly bulkhead: BulkheadPolicy,
  ) {
    this.deadline = remote.timeout > 0 ? this.started + remote.timeout : Number.POSITIVE_INFINITY;
  }

  async run(): Promise<void> {
    const { ctx, remote } = this;
    if (remote.timeout > 0) {
      this.timer = setTimeout(() => this.over.abort(new CallOver('deadline')), remote.timeout);
    }
    const onClose = () => {
      if (!ctx.res.writableFinished) {
        this.clientGone = true;
        this.over.abort(new Cancelled('client gone'));
      }
    };
    ctx.res.once('close', onClose);
    try {
      await this.bulkhead.execute(() => this.inSlot(), this.over.signal);
    } catch (err) {
      if (err instanceof BulkheadRejectedError) {
        this.fail(
          503,
          'TRELLIS_E_BULKHEAD_FULL',
          `remote "${this.deps.pool.name}" has ${remote.bulkhead.maxConcurrent} calls in flight and ${remote.bulkhead.maxQueue} waiting: try again later`,
        );
      } else if (err instanceof TaskCancelledError || this.over.signal.aborted) {
        this.timedOut();
      } else {
        ctx.log.error({ err }, 'ambassador call failed');
        this.fail(
          502,
          'TRELLIS_E_UPSTREAM_RESET',
          `remote "${this.deps.pool.name}" failed: ${(err as Error).message}`,
        );
      }
    } finally {
      if (this.timer !== undefined) clearTimeout(this.timer);
      ctx.res.off('close', onClose);
      ctx.attempts = this.attempt;
    }
  }

  private async inSlot(): Promise<void> {
    const body = await this.readBody();
    if (body === null) return;
    let added: Record<string, string> = {};
    if (this.deps.credentials !== undefined) {
      try {
        added = await this.deps.credentials();
      } catch (err) {
        if (!(err instanceof TokenUnavailable)) throw err;
        return this.fail(
          503,
          'TRELLIS_E_TOKEN_UNAVAILABLE',
          `no access token for remote "${this.deps.pool.name}": ${err.message}`,
          { 'retry-after': '1' },
        );
      }
    }
    await this.attempts(body, added);
  }

  /** The client's body, buffered so every attempt sends it whole; null when answered already. */
  private async readBody(): Promise<Buffer | undefined | null> {
    const { ctx, remote } = this;
    const h = ctx.req.headers;
    if (
      h['transfer-encoding'] === undefined &&
      (h['content-length'] === undefined || h['content-length'] === '0')
    )
      return undefined;
    const max = remote.maxBodySize;
    const tooLarge = () => {
      // The rest of the body is not read: the connection cannot be reused.
      ctx.res.shouldKeepAlive = false;
      this.fail(
        413,
        'TRELLIS_E_BODY_TOO_LARGE',
        `the request body is larger than ${max} bytes (maxBodySize): send a smaller one`,
      );
    };
    if (Number(h['content-length']) > max) {
      tooLarge();
      return null;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > max) {
          tooLarge();
          return null;
        }
        chunks.push(chunk);
        if (this.over.signal.aborted) break;
      }
    } catch {
      // The client went away mid-body: nobody is left to answer.
      return null;
    }
    if (this.over.signal.aborted) {
      this.timedOut();
      return null;
    }
    return Buffer.concat(chunks);
  }

  private async attempts(body: Buffer | undefined, added: Record<string, string>): Promise<void> {
    const { ctx, deps } = this;
    const { pool } = deps;
    const method = ctx.req.method ?? 'GET';
    let tried: Set<Upstream> | undefined;
    /** Upstreams whose breaker refused this call (opened by another call since it was picked). */
    let broken: Set<Upstream> | undefined;
    let lastFailure: Failure | undefined;
    for (;;) {
      if (this.over.signal.aborted) return this.timedOut();
      const upstream = this.pickUpstream(tried, broken);
      if (upstream === undefined) {
        return this.fail(
          503,
          'TRELLIS_E_CIRCUIT_OPEN',
          `every upstream of remote "${pool.name}" has its circuit breaker open: try again in ${this.remote.breaker.halfOpenAfter} ms`,
          { 'retry-after': String(Math.max(1, Math.ceil(this.remote.breaker.halfOpenAfter / 1000))) },
        );
      }
      this.attempt++;
      ctx.upstream = upstream.id;
      const result = await this.send(upstream, method, body, added);
      if (result === 'broken') {
        // Opened by another call since we picked it: not an attempt, go elsewhere.
        this.attempt--;
        broken ??= new Set();
        broken.add(upstream);
        continue;
      }
      if (result.kind === 'answer') return this.relay(upstream, result.response, result.startedAt);
      if (this.clientGone) return;
      // A failure or a retryable answer: retry, or give the client what we have.
      const response = result.kind === 'failedAnswer' ? result.response : undefined;
      const status = response?.statusCode;
      let outcome: AttemptOutcome = 'http5xx';
      if (result.kind === 'failure') {
        outcome = result.outcome;
        lastFailure = result.failure;
      }
      const delay = this.retryDelay(method, outcome, status, response?.headers);
      if (delay === undefined) {
        if (response !== undefined) return this.relay(upstream, response, result.startedAt);
        return this.failWith(lastFailure ?? 'reset');
      }
      if (response !== undefined) {
        // Read and dropped: the connection stays reusable and the client never sees it.
        const dropped: AttemptOutcome = status === 429 ? 'success' : 'http5xx';
        pool.end(upstream, dropped, performance.now() - result.startedAt);
        deps.metrics.attempt(upstream.id, String(status));
        response.body.dump().catch(() => {});
      }
      tried ??= new Set();
      tried.add(upstream);
      if (!(await this.wait(delay))) return this.clientGone ? undefined : this.timedOut();
    }
  }

  /** An upstream whose breaker lets an attempt through, or undefined when every one refuses. */
  private pickUpstream(
    tried: Set<Upstream> | undefined,
    broken: Set<Upstream> | undefined,
  ): Upstream | undefined {
    const { pool, breakers } = this.deps;
    const hashKey = pool.hashKey?.(this.ctx.req.headers, this.ctx.clientIp);
    // The pool's pick widens to excluded upstreams rather than return none: refused ones are
    // skipped here, and when every upstream refuses the call is answered 503.
    const skip = new Set<Upstream>(broken);
    for (let i = 0; i <= pool.upstreams.length; i++) {
      if (skip.size >= pool.upstreams.length) return undefined;
      const exclude = skip.size === 0 ? tried : new Set([...(tried ?? []), ...skip]);
      const u = pool.pick(hashKey, exclude);
      if (u === undefined) return undefined;
      if (!skip.has(u) && !breakers.refuses(u.id)) return u;
      skip.add(u);
    }
    return undefined;
  }

  /** One attempt through the upstream's breaker, until the response head. */
  private async send(
    upstream: Upstream,
    method: string,
    body: Buffer | undefined,
    added: Record<string, string>,
  ): Promise<
    | 'broken'
    | { kind: 'answer' | 'failedAnswer'; response: Dispatcher.ResponseData; startedAt: number }
    | { kind: 'failure'; failure: Failure; outcome: AttemptOutcome; startedAt: number }
  > {
    const { ctx, remote, deps } = this;
    const { pool } = deps;
    const left = this.deadline - performance.now();
    const perTry = remote.perTryTimeout > 0 ? Math.min(remote.perTryTimeout, left) : left;
    const attempt = new AbortController();
    const cut = () => attempt.abort(this.over.signal.reason);
    this.over.signal.addEventListener('abort', cut, { once: true });
    const tryTimer =
      Number.isFinite(perTry) && remote.perTryTimeout > 0
        ? setTimeout(() => attempt.abort(new PerTryTimeout('per-try timeout')), Math.max(0, perTry))
        : undefined;
    const headers = this.headersFor(upstream, perTry, added);
    const startedAt = performance.now();
    let began = false;
    try {
      const response = await deps.breakers.of(upstream.id).execute(async () => {
        pool.begin(upstream);
        began = true;
        const res = await upstream.dispatcher.request({
          path: ctx.req.url ?? '/',
          method: method as Dispatcher.HttpMethod,
          headers,
          body: body ?? null,
          signal: attempt.signal,
        });
        // 5xx answers count against the breaker; 429 is the remote's load shedding, not a fault.
        if (res.statusCode >= 500) throw new FailedAnswer(res);
        return res;
      });
      clearTimeout(tryTimer);
      this.over.signal.removeEventListener('abort', cut);
      if (response.statusCode === 429) return { kind: 'failedAnswer', response, startedAt };
      return { kind: 'answer', response, startedAt };
    } catch (err) {
      clearTimeout(tryTimer);
      this.over.signal.removeEventListener('abort', cut);
      if (err instanceof BrokenCircuitError) return 'broken';
      if (err instanceof FailedAnswer) {
        const status = err.response.statusCode;
        if (status === 502 || status === 503 || status === 504)
          return { kind: 'failedAnswer', response: err.response, startedAt };
        // A 500 (or 501, 505…) is the origin's own verdict: relayed, never retried.
        return { kind: 'answer', response: err.response, startedAt };
      }
      const reason = attempt.signal.reason;
      const cancelled = this.clientGone;
      const outcome: AttemptOutcome = cancelled
        ? CANCELLED
        : reason instanceof PerTryTimeout || reason instanceof CallOver
          ? 'timeout'
          : outcomeOf(err);
      if (began) pool.end(upstream, outcome, performance.now() - startedAt);
      deps.metrics.attempt(upstream.id, outcome);
      const failure: Failure =
        outcome === 'timeout' ? 'timeout' : outcome === 'connectFailure' ? 'connect' : 'reset';
      return { kind: 'failure', failure, outcome, startedAt };
    }
  }

  /** The request headers of one attempt: the client's, trace context, time left, credentials. */
  private headersFor(upstream: Upstream, perTryMs: number, added: Record<string, string>): string[] {
    const { ctx, remote } = this;
    const out: string[] = [];
    const raw = upstreamRequestHeaders(ctx, upstream.origin.host);
    for (let i = 0; i < raw.length; i += 2) {
      if (!REPLACED.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
    }
    out.push('traceparent', nextTraceparent(ctx.req.headers.traceparent));
    if (remote.deadlineHeader !== '' && Number.isFinite(perTryMs)) {
      out.push(remote.deadlineHeader, String(Math.max(1, Math.floor(perTryMs))));
    }
    for (const name in added) {
      // The ambassador's credentials replace whatever the client sent under that name.
      const lower = name.toLowerCase();
      for (let i = out.length - 2; i >= 0; i -= 2) if (out[i]!.toLowerCase() === lower) out.splice(i, 2);
      out.push(name, added[name]!);
    }
    return out;
  }

  /**
   * How long to wait before the next attempt, or undefined when there is none: the pool's policy
   * refuses (attempts, method, condition, budget) or the next attempt could not start in time.
   */
  private retryDelay(
    method: string,
    outcome: AttemptOutcome,
    status: number | undefined,
    headers: IncomingHttpHeaders | undefined,
  ): number | undefined {
    const { pool, metrics } = this.deps;
    if (this.over.signal.aborted) return undefined;
    const input = {
      method,
      attempt: this.attempt,
      outcome,
      ...(status === undefined ? {} : { status }),
      retryNonIdempotent: this.remote.retryNonIdempotent,
      bodySent: false,
    };
    const policy = pool.retry;
    // The concrete policy says why it refused (to count budget exhaustion); the contract only yes/no.
    const refusal =
      policy instanceof ServiceRetryPolicy
        ? policy.refusal(input)
        : policy.shouldRetry(input)
          ? undefined
          : 'other';
    if (refusal === 'budget') metrics.budgetExhausted();
    if (refusal !== undefined) return undefined;
    let delay = policy.backoffMs(this.attempt);
    const after = retryAfterMs(headers?.['retry-after']);
    if (after !== undefined) delay = Math.max(delay, after);
    if (performance.now() + delay >= this.deadline) return undefined;
    metrics.retry(status === undefined ? reasonOf(outcome) : String(status));
    return delay;
  }

  /** Waits `ms`; false when the call ended first (deadline, client gone). */
  private wait(ms: number): Promise<boolean> {
    const signal = this.over.signal;
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', done);
        resolve(true);
      }, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Streams an answer to the client; the upstream's outcome is recorded when it ends. */
  private async relay(
    upstream: Upstream,
    response: Dispatcher.ResponseData,
    startedAt: number,
  ): Promise<void> {
    const { ctx, deps } = this;
    const status = response.statusCode;
    ctx.upstreamMs = performance.now() - startedAt;
    const head: string[] = [];
    for (const [name, value] of Object.entries(response.headers)) {
      if (value === undefined || DROP_RESPONSE.has(name)) continue;
      if (Array.isArray(value)) for (const v of value) head.push(name, v);
      else head.push(name, value);
    }
    head.push('x-request-id', ctx.requestId);
    ctx.res.writeHead(status, head);
    deps.metrics.call(status, (performance.now() - this.started) / 1000);
    const outcome: AttemptOutcome = status >= 500 ? 'http5xx' : 'success';
    try {
      await pipeline(response.body, ctx.res);
      deps.pool.end(upstream, outcome, performance.now() - startedAt);
      deps.metrics.attempt(upstream.id, outcome);
    } catch {
      // The answer broke midway (upstream reset, deadline, client gone): the client sees it cut.
      const failed: AttemptOutcome = this.clientGone
        ? CANCELLED
        : this.over.signal.aborted
          ? 'timeout'
          : 'reset';
      deps.pool.end(upstream, failed, performance.now() - startedAt);
      deps.metrics.attempt(upstream.id, failed);
      ctx.res.destroy();
    }
  }

  private timedOut(): void {
    if (this.clientGone) return;
    this.fail(
      504,
      'TRELLIS_E_UPSTREAM_TIMEOUT',
      `remote "${this.deps.pool.name}" did not answer within the ${this.remote.timeout} ms deadline`,
    );
  }

  private failWith(failure: Failure): void {
    const name = this.deps.pool.name;
    if (failure === 'timeout')
      this.fail(504, 'TRELLIS_E_UPSTREAM_TIMEOUT', `remote "${name}" did not answer in time`);
    else if (failure === 'connect')
      this.fail(502, 'TRELLIS_E_UPSTREAM_UNAVAILABLE', `remote "${name}" could not be reached`);
    else
      this.fail(502, 'TRELLIS_E_UPSTREAM_RESET', `remote "${name}" closed the connection without an answer`);
  }

  private fail(status: number, code: string, detail: string, headers?: Record<string, string>): void {
    if (this.ctx.res.headersSent || this.ctx.res.destroyed) return;
    this.ctx.errorCode = code;
    this.deps.metrics.call(status, (performance.now() - this.started) / 1000);
    sendProblem(this.ctx, { status, code, detail, ...(headers === undefined ? {} : { headers }) });
  }
}

function reasonOf(outcome: AttemptOutcome): string {
  return outcome === 'connectFailure' ? 'connect-failure' : outcome;
}

/** `Retry-After` as ms: delta-seconds or an HTTP date (RFC 9110 10.2.3); undefined if absent or bad. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  if (typeof value !== 'string') return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
