import type { Readable } from 'node:stream';
import type { AttemptOutcome, ServicePool, Upstream } from '../../http/upstream/types.js';
import type { Cancel } from './cancel.js';

/** Why a call of a part did not produce a usable JSON body. */
export type FailureReason =
  | 'timeout'
  | 'status'
  | 'connect'
  | 'reset'
  | 'tooLarge'
  | 'invalidJson'
  | 'missingInput'
  | 'dependency'
  | 'fanOutTooWide'
  | 'aborted';

export type CallResult =
  | { ok: true; body: unknown; text: string; cached?: boolean }
  | { ok: false; reason: FailureReason; status?: number; detail: string };

export interface Call {
  method: string;
  /** Path and query, already encoded. */
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
  maxBodySize: number;
  /** Aborts when the part's deadline passes or the client goes away (reason says which). */
  signal: Cancel;
  /** Consistent-hashing key of the client request, when the service hashes. */
  hashKey: string | undefined;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A cancellation reason marking the part's own deadline (as opposed to the client leaving). */
export const DEADLINE = Symbol('deadline');

/**
 * One call through a service pool: pick an upstream, send, read the JSON body under a size
 * limit, retry what the service's retry policy allows, for safe methods only.
 */
export async function callService(pool: ServicePool, call: Call): Promise<CallResult> {
  // Allocated on the first retry only: most calls succeed on the first attempt.
  let tried: Set<Upstream> | undefined;
  for (let attempt = 1; ; attempt++) {
    const upstream = pool.pick(call.hashKey, tried);
    if (!upstream) return { ok: false, reason: 'connect', detail: `service "${pool.name}" has no upstreams` };
    const started = performance.now();
    pool.begin(upstream);
    const { result, outcome } = await attemptOnce(upstream, call);
    pool.end(upstream, outcome, performance.now() - started);
    if (result.ok || call.signal.aborted) return call.signal.aborted && !result.ok ? aborted(call) : result;
    // The unsafe last step is never repeated, even PUT or DELETE that the policy would allow.
    const retryable =
      SAFE.has(call.method) &&
      (outcome !== 'success' || (result.status !== undefined && [502, 503, 504].includes(result.status)));
    if (
      !retryable ||
      !pool.retry.shouldRetry({
        method: call.method,
        attempt,
        ...(result.status === undefined ? {} : { status: result.status }),
        outcome,
        retryNonIdempotent: false,
        bodySent: call.body !== undefined,
      })
    ) {
      return result;
    }
    tried ??= new Set();
    tried.add(upstream);
    // Every upstream tried: allow them again rather than give up while attempts remain.
    if (tried.size >= pool.upstreams.length) tried.clear();
    if (await call.signal.wait(pool.retry.backoffMs(attempt))) return aborted(call);
  }
}

function aborted(call: Call): CallResult {
  return call.signal.reason === DEADLINE
    ? { ok: false, reason: 'timeout', detail: 'did not answer in time' }
    : { ok: false, reason: 'aborted', detail: 'the request was cancelled' };
}

async function attemptOnce(
  upstream: Upstream,
  call: Call,
): Promise<{ result: CallResult; outcome: AttemptOutcome }> {
  let res: Awaited<ReturnType<Upstream['dispatcher']['request']>>;
  try {
    // No `origin`: the dispatcher is the upstream's own Pool, and undici would parse it per call.
    res = await upstream.dispatcher.request({
      path: call.path,
      method: call.method as 'GET',
      headers: call.headers,
      body: call.body ?? null,
      signal: call.signal,
    });
  } catch (err) {
    return failure(err, call);
  }
  const { statusCode } = res;
  if (statusCode < 200 || statusCode >= 300) {
    // Drain so the keep-alive connection can be reused; a failed part needs no body.
    res.body.dump().catch(() => {});
    return {
      result: { ok: false, reason: 'status', status: statusCode, detail: `answered ${statusCode}` },
      outcome: statusCode >= 500 ? 'http5xx' : 'success',
    };
  }
  const length = res.headers['content-length'];
  const declared = typeof length === 'string' ? Number(length) : -1;
  if (declared > call.maxBodySize) {
    res.body.destroy();
    return { result: tooLarge(call), outcome: 'success' };
  }
  let text: string;
  try {
    // A declared length within the limit (the common case) lets undici gather the body itself,
    // cheaper than iterating; otherwise count as it arrives and stop at the limit.
    if (declared >= 0) text = await res.body.text();
    else {
      const read = await readLimited(res.body, call.maxBodySize);
      if (read === undefined) return { result: tooLarge(call), outcome: 'success' };
      text = read;
    }
  } catch (err) {
    return failure(err, call);
  }
  if (statusCode === 204 || text === '')
    return { result: { ok: true, body: null, text: 'null' }, outcome: 'success' };
  try {
    return { result: { ok: true, body: JSON.parse(text), text }, outcome: 'success' };
  } catch {
    return {
      result: { ok: false, reason: 'invalidJson', detail: 'answered with a body that is not JSON' },
      outcome: 'success',
    };
  }
}

/** The body as text, or undefined (and the stream destroyed) once it passes `max` bytes. */
function readLimited(body: Readable, max: number): Promise<string | undefined> {
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
    body.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    body.once('error', reject);
  });
}

function tooLarge(call: Call): CallResult {
  return { ok: false, reason: 'tooLarge', detail: `answered with more than ${call.maxBodySize} bytes` };
}

function failure(err: unknown, call: Call): { result: CallResult; outcome: AttemptOutcome } {
  if (call.signal.aborted) {
    // Our own deadline is the upstream's slowness; a cancellation (the client left, a required
    // sibling failed) says nothing about the upstream and must not push it towards ejection.
    return { result: aborted(call), outcome: call.signal.reason === DEADLINE ? 'timeout' : 'success' };
  }
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return { result: { ok: false, reason: 'timeout', detail: 'did not answer in time' }, outcome: 'timeout' };
  }
  if (
    code === 'ECONNREFUSED' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'EHOSTUNREACH' ||
    code === 'ENOTFOUND'
  ) {
    return {
      result: { ok: false, reason: 'connect', detail: 'could not be reached' },
      outcome: 'connectFailure',
    };
  }
  return { result: { ok: false, reason: 'reset', detail: 'closed the connection' }, outcome: 'reset' };
}
