import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { AttemptOutcome, ServicePool, Upstream } from '../upstream/types.js';
import { failureOf } from './outcome.js';
import { isRetryableStatus, retryAllowed } from './retry-rules.js';

/**
 * A cancellation signal: an AbortSignal, or an EventEmitter with `aborted`/`reason` that emits
 * `abort` (undici accepts both; the emitter is cheaper on hot paths, see aggregate's Cancel).
 */
export type ExchangeSignal =
  | AbortSignal
  | {
      readonly aborted: boolean;
      readonly reason?: unknown;
      once(event: 'abort', listener: () => void): unknown;
      off(event: 'abort', listener: () => void): unknown;
    };

/** One request for `exchange()`. */
export interface ExchangeRequest {
  method: string;
  /** Path and query, already encoded. */
  path: string;
  headers: Record<string, string> | string[];
  /** A buffered body: it can be sent again on a retry. */
  body?: Buffer | string | undefined;
  /** Largest response body read; a larger one ends as `tooLarge`. */
  maxBodySize: number;
  /** The consistent-hashing key of the request, when the service hashes. */
  hashKey?: string | undefined;
  /** Let non-idempotent methods (POST, PATCH) be retried (only when the origin de-duplicates). */
  retryNonIdempotent?: boolean;
  /** false: one attempt whatever the policy says (a step that must run once). Default true. */
  retry?: boolean;
  /** Cancels the exchange, retries and backoff included. */
  signal?: ExchangeSignal | undefined;
  /** Whether a cancellation reason is the caller's deadline (counted as the upstream's timeout). */
  isDeadline?: (reason: unknown) => boolean;
  /** Which answers have their body read (default all); others are drained unread. */
  readBody?: (status: number) => boolean;
}

/** Why an exchange produced no answer. */
export type ExchangeFailure = 'noUpstream' | 'connect' | 'reset' | 'timeout' | 'tooLarge' | 'aborted';

/** The answer of an exchange (any status, after retries), or why there is none. */
export type ExchangeResult =
  | {
      ok: true;
      status: number;
      headers: IncomingHttpHeaders;
      /** Empty when `readBody` said no. */
      body: Buffer;
      upstream: string;
      attempts: number;
    }
  | { ok: false; failure: ExchangeFailure; status?: number; upstream?: string; attempts: number };

/**
 * The buffered form of the forwarding exchange: sends one request through a service pool
 * (pick an upstream by its balancer, retry by the one rule set of `retry-rules.ts` with the
 * service's jittered backoff and budget, feed every attempt's outcome to outlier ejection and
 * the upstream metrics) and resolves with status, headers and body read under a size limit.
 * For handlers that need the whole answer: aggregate parts, shadow diffing, translation.
 */
export async function exchange(pool: ServicePool, request: ExchangeRequest): Promise<ExchangeResult> {
  const { signal } = request;
  // Allocated on the first retry only: most calls succeed on the first attempt.
  let tried: Set<Upstream> | undefined;
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) return aborted(request, attempt - 1, '');
    const upstream = pool.pick(request.hashKey, tried);
    if (upstream === undefined) return { ok: false, failure: 'noUpstream', attempts: attempt - 1 };
    const started = performance.now();
    pool.begin(upstream);
    const { result, outcome } = await attemptOnce(upstream, request, attempt);
    pool.end(upstream, outcome, performance.now() - started);
    if (signal?.aborted) return result.ok ? result : aborted(request, attempt, upstream.id);
    const status = result.ok ? result.status : undefined;
    if (result.ok && !isRetryableStatus(result.status)) return result;
    if (
      request.retry === false ||
      !retryAllowed(pool, {
        method: request.method,
        attempt,
        outcome,
        status,
        retryNonIdempotent: request.retryNonIdempotent === true,
        bodySent: false,
      })
    ) {
      return result;
    }
    tried ??= new Set();
    tried.add(upstream);
    if (await cancelledDuring(pool.retry.backoffMs(attempt), signal))
      return aborted(request, attempt, upstream.id);
  }
}

function aborted(request: ExchangeRequest, attempts: number, upstream: string): ExchangeResult {
  const deadline = request.isDeadline?.(request.signal?.reason) === true;
  const failure = deadline ? 'timeout' : 'aborted';
  return upstream === '' ? { ok: false, failure, attempts } : { ok: false, failure, upstream, attempts };
}

async function attemptOnce(
  upstream: Upstream,
  request: ExchangeRequest,
  attempts: number,
): Promise<{ result: ExchangeResult; outcome: AttemptOutcome }> {
  let res: Dispatcher.ResponseData;
  try {
    // No `origin`: the dispatcher is the upstream's own Pool, and undici would parse it per call.
    res = await upstream.dispatcher.request({
      path: request.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: request.headers,
      body: request.body ?? null,
      signal: request.signal as AbortSignal | undefined,
    });
  } catch (err) {
    return failure(err, request, upstream, attempts);
  }
  const { statusCode } = res;
  const outcome: AttemptOutcome = statusCode >= 500 ? 'http5xx' : 'success';
  const answer = (body: Buffer): { result: ExchangeResult; outcome: AttemptOutcome } => ({
    result: { ok: true, status: statusCode, headers: res.headers, body, upstream: upstream.id, attempts },
    outcome,
  });
  if (request.readBody?.(statusCode) === false) {
    // Drain so the keep-alive connection can be reused; nobody reads this body.
    res.body.dump().catch(() => {});
    return answer(EMPTY);
  }
  const length = res.headers['content-length'];
  const declared = typeof length === 'string' ? Number(length) : -1;
  if (declared > request.maxBodySize) {
    // Destroying the body errors it with an AbortError that nobody is left to read.
    res.body.once('error', ignore).destroy();
    return tooLarge(statusCode, upstream, attempts, outcome);
  }
  try {
    // A declared length within the limit (the common case) lets undici gather the body itself,
    // cheaper than iterating; otherwise count as it arrives and stop at the limit.
    if (declared >= 0) return answer(Buffer.from(await res.body.arrayBuffer()));
    const read = await readLimited(res.body, request.maxBodySize);
    return read === undefined ? tooLarge(statusCode, upstream, attempts, outcome) : answer(read);
  } catch (err) {
    return failure(err, request, upstream, attempts);
  }
}

const EMPTY = Buffer.alloc(0);
const ignore = () => {};

function tooLarge(
  status: number,
  upstream: Upstream,
  attempts: number,
  outcome: AttemptOutcome,
): { result: ExchangeResult; outcome: AttemptOutcome } {
  return { result: { ok: false, failure: 'tooLarge', status, upstream: upstream.id, attempts }, outcome };
}

function failure(
  err: unknown,
  request: ExchangeRequest,
  upstream: Upstream,
  attempts: number,
): { result: ExchangeResult; outcome: AttemptOutcome } {
  if (request.signal?.aborted) {
    // The caller's deadline is the upstream's slowness; any other cancellation (the client left,
    // a required sibling failed) says nothing about the upstream and must not push it to ejection.
    const result = aborted(request, attempts, upstream.id);
    return { result, outcome: result.ok === false && result.failure === 'timeout' ? 'timeout' : 'cancelled' };
  }
  const { outcome, kind } = failureOf(err);
  return { result: { ok: false, failure: kind, upstream: upstream.id, attempts }, outcome };
}

/** The body, or undefined (and the stream destroyed) once it passes `max` bytes. */
function readLimited(body: Readable, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        body.destroy();
        resolve(undefined);
      } else chunks.push(chunk);
    });
    body.once('end', () => resolve(Buffer.concat(chunks)));
    body.once('error', reject);
  });
}

/** Waits `ms`, or less when cancelled first; true when the wait was cut short. */
function cancelledDuring(ms: number, signal: ExchangeSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(true);
  if (signal === undefined) {
    return new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms, false) : setImmediate(resolve, false)));
  }
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      if ('removeEventListener' in signal) signal.removeEventListener('abort', done);
      else signal.off('abort', done);
      resolve(false);
    }, ms);
    if ('addEventListener' in signal) signal.addEventListener('abort', done, { once: true });
    else signal.once('abort', done);
  });
}
