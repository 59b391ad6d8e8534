import type { HandlerInstance } from '../handlers/types.js';
import type { ExchangeHooks } from '../http/exchange/hooks.js';
import { type ForwardOptions, forward } from '../http/forward.js';
import { type Problem, sendProblem } from '../http/problem.js';
import type { RequestContext } from '../http/types.js';
import type { ServicePool } from '../http/upstream/types.js';
import { hasBody, readBody } from './body.js';
import type { UpstreamBreakers } from './breaker.js';
import { Bulkhead } from './bulkhead.js';
import { type CredentialSource, credentialNames, TokenUnavailable } from './credentials.js';
import { hedgeOptions, type LatencyWindow } from './hedge.js';
import type { AmbassadorMetrics } from './metrics.js';
import type { RemoteConfig } from './schema.js';

/**
 * One call of the local client to a remote service, through the ambassador's policies, in this
 * order (outermost first):
 *
 * 1. total deadline: counted from the call's arrival; no attempt starts after it, and it cuts
 *    the bulkhead wait, the attempt or the backoff it finds running;
 * 2. bulkhead: a slot among `maxConcurrent`, or a place in the bounded queue, or 503 at once;
 * 3. the body, buffered up to `maxBodySize` so every attempt sends it whole (chunked included);
 * 4. credentials (static headers, the OAuth2 token), replacing the client's of the same name;
 * 5. the shared streaming exchange (src/http/forward.ts) with the ambassador's options: per
 *    attempt an upstream from the pool (balancer, outlier ejection) whose breaker admits it,
 *    the per-try deadline until the response head, the time left sent in `deadlineHeader`, W3C
 *    trace context; retries by the data plane's one rule set (attempts, idempotent or opted in,
 *    `retry.on`, the retry budget charged at the decision so retries in backoff count) after
 *    the jittered backoff or the answer's Retry-After, whichever is longer, and only when the
 *    next attempt can start before the deadline.
 *
 * Nothing is retried once a response byte went to the client: a failed answer (502/503/504,
 * 429) is read and dropped before deciding, any other answer streams to the client.
 */

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
  const { pool, metrics, credentials } = deps;
  const bulkhead = new Bulkhead(remote.bulkhead.maxConcurrent, remote.bulkhead.maxQueue);
  const options = forwardOptions(remote, deps, bulkhead);

  const fail = (ctx: RequestContext, problem: Problem): void => {
    if (ctx.res.headersSent || ctx.res.destroyed) return;
    ctx.errorCode = problem.code;
    ctx.attempts = 0;
    metrics.call(problem.status, (performance.now() - ctx.startedAt) / 1000);
    sendProblem(ctx, problem);
  };
  const timedOut = (ctx: RequestContext): void =>
    fail(ctx, {
      status: 504,
      code: 'TRELLIS_E_UPSTREAM_TIMEOUT',
      detail: `remote "${pool.name}" did not answer within the ${remote.timeout} ms deadline`,
    });
  const deadlinePassed = (ctx: RequestContext): boolean =>
    remote.timeout > 0 && performance.now() - ctx.startedAt >= remote.timeout;

  /** Sends the call through the exchange, which releases the slot when it is over. */
  const send = (
    ctx: RequestContext,
    body: Buffer | undefined,
    headers?: Readonly<Record<string, string>>,
  ) => {
    // The client left or the deadline passed while the body or the token was awaited.
    if (ctx.res.destroyed) return bulkhead.release();
    if (deadlinePassed(ctx)) {
      bulkhead.release();
      return timedOut(ctx);
    }
    if (body === undefined && headers === undefined) return forward(ctx, pool, options);
    forward(ctx, pool, options, {
      ...(body === undefined ? {} : { body }),
      ...(headers === undefined ? {} : { headers }),
    });
  };

  const withCredentials = (ctx: RequestContext, body: Buffer | undefined): void => {
    if (credentials === undefined) {
      send(ctx, body);
      return;
    }
    let headers: ReturnType<CredentialSource>;
    try {
      headers = credentials();
    } catch (err) {
      headers = Promise.reject(err);
    }
    if (!(headers instanceof Promise)) {
      send(ctx, body, headers);
      return;
    }
    headers.then(
      (h) => send(ctx, body, h),
      (err: unknown) => {
        bulkhead.release();
        if (err instanceof TokenUnavailable) {
          fail(ctx, {
            status: 503,
            code: 'TRELLIS_E_TOKEN_UNAVAILABLE',
            detail: `no access token for remote "${pool.name}": ${err.message}`,
            headers: { 'retry-after': '1' },
          });
        } else {
          ctx.log.error({ err }, 'ambassador credentials failed');
          fail(ctx, {
            status: 502,
            code: 'TRELLIS_E_UPSTREAM_RESET',
            detail: `remote "${pool.name}" failed`,
          });
        }
      },
    );
  };

  /** The call holds a slot from here on. */
  const inSlot = (ctx: RequestContext): void => {
    if (!hasBody(ctx)) {
      withCredentials(ctx, undefined);
      return;
    }
    readBody(ctx, remote.maxBodySize).then((body) => {
      if (body === 'gone') return bulkhead.release();
      if (body === 'too-large') {
        bulkhead.release();
        // The rest of the body is not read: the connection cannot be reused.
        ctx.res.shouldKeepAlive = false;
        return fail(ctx, {
          status: 413,
          code: 'TRELLIS_E_BODY_TOO_LARGE',
          detail: `the request body is larger than ${remote.maxBodySize} bytes (maxBodySize): send a smaller one`,
        });
      }
      withCredentials(ctx, body);
    });
  };

  /** No slot free: wait in the queue until one is, the deadline passes or the client leaves. */
  const wait = (ctx: RequestContext): void => {
    let timer: NodeJS.Timeout | undefined;
    const onClose = () => {
      if (bulkhead.cancel(waiter!)) clearTimeout(timer);
    };
    const waiter = bulkhead.enqueue(() => {
      clearTimeout(timer);
      ctx.res.off('close', onClose);
      inSlot(ctx);
    });
    if (waiter === undefined) {
      metrics.bulkheadRejected();
      fail(ctx, {
        status: 503,
        code: 'TRELLIS_E_BULKHEAD_FULL',
        detail: `remote "${pool.name}" has ${remote.bulkhead.maxConcurrent} calls in flight and ${remote.bulkhead.maxQueue} waiting: try again later`,
      });
      return;
    }
    ctx.res.once('close', onClose);
    if (remote.timeout > 0) {
      const left = remote.timeout - (performance.now() - ctx.startedAt);
      timer = setTimeout(
        () => {
          if (!bulkhead.cancel(waiter)) return;
          ctx.res.off('close', onClose);
          timedOut(ctx);
        },
        Math.max(0, left),
      );
    }
  };

  return (ctx) => {
    if (bulkhead.tryEnter()) inSlot(ctx);
    else wait(ctx);
  };
}

/** The streaming exchange's options for a remote: its deadlines, trace, retry rules and hooks. */
function forwardOptions(remote: RemoteConfig, deps: RemoteDeps, bulkhead: Bulkhead): ForwardOptions {
  const { pool } = deps;
  const hedge = remote.hedge === undefined ? undefined : hedgeOptions(remote.hedge, deps.metrics);
  const replaced = new Set(['traceparent', ...credentialNames(remote.credentials)]);
  if (remote.deadlineHeader !== '') replaced.add(remote.deadlineHeader.toLowerCase());
  return {
    retryNonIdempotent: remote.retryNonIdempotent,
    timeoutMs: remote.timeout,
    deadlineFromArrival: true,
    ...(remote.perTryTimeout > 0 ? { perTryTimeoutMs: remote.perTryTimeout } : {}),
    ...(remote.deadlineHeader === '' ? {} : { deadlineHeader: remote.deadlineHeader }),
    traceparent: true,
    retryAfter: true,
    replacedHeaders: replaced,
    // The remote is addressed as itself: its own Host, the client's path as it was written.
    preserveHost: false,
    target: (ctx) => ctx.req.url ?? '/',
    ...(pool.hashKey === undefined ? {} : { hashKey: (ctx) => pool.hashKey!(ctx.req.headers, ctx.clientIp) }),
    hooks: exchangeHooks(remote, deps, bulkhead, hedge?.window),
    ...(hedge === undefined ? {} : { hedge: hedge.options }),
  };
}

/** Breakers, metrics and the bulkhead slot around each exchange of a remote. */
function exchangeHooks(
  remote: RemoteConfig,
  deps: RemoteDeps,
  bulkhead: Bulkhead,
  latencies: LatencyWindow | undefined,
): ExchangeHooks {
  const { breakers, metrics } = deps;
  const retryAfter = String(Math.max(1, Math.ceil(remote.breaker.halfOpenAfter / 1000)));
  return {
    admit: (upstream) => breakers.of(upstream.id).admit(),
    attemptEnded(upstream, outcome, ticket, dropped) {
      breakers.of(upstream.id).record(outcome, ticket);
      // An answer dropped for a retry is counted by its status, as the metric's docs say.
      metrics.attempt(upstream.id, dropped === 0 ? outcome : String(dropped));
    },
    refused: (pool) => ({
      status: 503,
      code: 'TRELLIS_E_CIRCUIT_OPEN',
      detail: `every upstream of remote "${pool.name}" has its circuit breaker open: try again in ${remote.breaker.halfOpenAfter} ms`,
      headers: { 'retry-after': retryAfter },
    }),
    retried: (reason) => metrics.retry(reason),
    retryRefused(reason) {
      if (reason === 'budget') metrics.budgetExhausted();
    },
    answered(ctx, status) {
      metrics.call(status, (performance.now() - ctx.startedAt) / 1000);
      // The hedge's p95: how long answered attempts took to their head.
      if (latencies !== undefined && ctx.upstreamMs !== undefined && status < 500)
        latencies.record(ctx.upstreamMs);
    },
    done: () => bulkhead.release(),
  };
}
