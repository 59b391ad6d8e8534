import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { AttemptOutcome, ServicePool, Upstream } from '../upstream/types.js';
import { failureOf, tlsFailureOf } from './outcome.js';
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

/** Why an exchange produced no answer; `tls`: the TLS handshake failed (the result says why). */
export type ExchangeFailure = 'noUpstream' | 'connect' | 'tls' | 'reset' | 'timeout' | 'tooLarge' | 'aborted';

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
  | {
      ok: false;
      failure: ExchangeFailure;
      status?: number;
      upstream?: string;
      attempts: number;
      /** With `tls`: why the handshake failed, in words (answer it with `upstreamTlsProblem`). */
      tlsReason?: string;
    };

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

function attemptOnce(
  upstream: Upstream,
  request: ExchangeRequest,
  attempts: number,
): Promise<{ result: ExchangeResult; outcome: AttemptOutcome }> {
  // A raw dispatch (as the streaming exchange does) rather than `request()`: no body stream, no
  // promise per read, no AbortSignal listener bookkeeping inside undici; the chunks are gathered
  // here under the size limit.
  return new Promise((resolve) => {
    const handler = new Gather(upstream, request, attempts, resolve);
    // No `origin`: the dispatcher is the upstream's own Pool, and undici would parse it per call.
    upstream.dispatcher.dispatch(
      {
        path: request.path,
        method: request.method as Dispatcher.HttpMethod,
        headers: request.headers,
        body: request.body ?? null,
      },
      handler,
    );
  });
}

type Attempt = { result: ExchangeResult; outcome: AttemptOutcome };

/** One attempt's response, gathered under `maxBodySize`; settles once. */
class Gather implements Dispatcher.DispatchHandler {
  private abort: ((err?: Error) => void) | undefined;
  private settled = false;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private read = true;
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    private readonly upstream: Upstream,
    private readonly request: ExchangeRequest,
    private readonly attempts: number,
    private readonly resolve: (a: Attempt) => void,
  ) {
    const signal = request.signal;
    if (signal !== undefined) {
      this.onAbort = () => this.abort?.(abortError(signal.reason));
      if ('addEventListener' in signal) signal.addEventListener('abort', this.onAbort, { once: true });
      else signal.once('abort', this.onAbort);
    }
  }

  private settle(a: Attempt): void {
    if (this.settled) return;
    this.settled = true;
    const signal = this.request.signal;
    if (signal !== undefined && this.onAbort !== undefined) {
      if ('removeEventListener' in signal) signal.removeEventListener('abort', this.onAbort);
      else signal.off('abort', this.onAbort);
    }
    this.chunks = [];
    this.resolve(a);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.request.signal?.aborted) abort(abortError(this.request.signal.reason));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    if (statusCode < 200) return true;
    this.status = statusCode;
    this.headers = headersOf(rawHeaders);
    const outcome: AttemptOutcome = statusCode >= 500 ? 'http5xx' : 'success';
    if (this.request.readBody?.(statusCode) === false) {
      // Read and dropped by undici, so the keep-alive connection can be reused.
      this.read = false;
      return true;
    }
    const length = this.headers['content-length'];
    const declared = typeof length === 'string' ? Number(length) : -1;
    if (declared > this.request.maxBodySize) {
      this.settle(tooLarge(statusCode, this.upstream, this.attempts, outcome));
      this.abort?.(new Error('response body larger than the limit'));
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (!this.read || this.settled) return true;
    this.size += chunk.length;
    if (this.size > this.request.maxBodySize) {
      const outcome: AttemptOutcome = this.status >= 500 ? 'http5xx' : 'success';
      this.settle(tooLarge(this.status, this.upstream, this.attempts, outcome));
      this.abort?.(new Error('response body larger than the limit'));
      return false;
    }
    this.chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    if (this.settled) return;
    const c = this.chunks;
    const body = !this.read
      ? EMPTY
      : c.length === 1
        ? c[0]!
        : c.length === 0
          ? EMPTY
          : Buffer.concat(c, this.size);
    this.settle({
      result: {
        ok: true,
        status: this.status,
        headers: this.headers,
        body,
        upstream: this.upstream.id,
        attempts: this.attempts,
      },
      outcome: this.status >= 500 ? 'http5xx' : 'success',
    });
  }

  onError(err: Error): void {
    if (this.settled) return;
    this.settle(failure(err, this.request, this.upstream, this.attempts));
  }
}

/** The error undici is aborted with: the signal's reason when it is one. */
function abortError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error('aborted');
}

/** Raw response headers as node:http would give them: lower-case names, repeated ones as arrays. */
function headersOf(raw: Buffer[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    const value = raw[i + 1]!.toString('latin1');
    if (!Object.hasOwn(out, name)) {
      if (name === '__proto__')
        Object.defineProperty(out, name, { value, enumerable: true, configurable: true, writable: true });
      else out[name] = value;
    } else {
      const had = out[name]!;
      if (typeof had === 'string') out[name] = [had, value];
      else had.push(value);
    }
  }
  return out as IncomingHttpHeaders;
}

const EMPTY = Buffer.alloc(0);

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
  const tlsReason = kind === 'timeout' ? undefined : tlsFailureOf(err, upstream);
  if (tlsReason !== undefined)
    return { result: { ok: false, failure: 'tls', tlsReason, upstream: upstream.id, attempts }, outcome };
  return { result: { ok: false, failure: kind, upstream: upstream.id, attempts }, outcome };
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
