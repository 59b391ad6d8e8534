import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { TrellisErrorCode } from '../core/errors.js';
import type { AttemptOutcome, ServicePool } from '../http/upstream/types.js';

/**
 * One legacy call through the service's pool, its answer read whole under a size limit (a
 * translation needs the whole body). One attempt: legacy calls are mostly POSTs (SOAP), which
 * are never repeated on their own.
 */

export interface LegacySend {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
  maxBodySize: number;
  timeoutMs: number;
  hashKey: string | undefined;
}

export type LegacyResult =
  | { ok: true; status: number; headers: Record<string, string>; body: Buffer; upstream: string }
  | { ok: false; status: number; code: TrellisErrorCode; detail: string; reason: string; upstream?: string };

export async function sendLegacy(pool: ServicePool, call: LegacySend): Promise<LegacyResult> {
  const upstream = pool.pick(call.hashKey);
  if (!upstream) {
    return {
      ok: false,
      status: 503,
      code: 'TRELLIS_E_LEGACY_UNAVAILABLE',
      detail: 'the legacy system has no healthy instance',
      reason: 'no upstream',
    };
  }
  const name = upstream.origin.host;
  const started = performance.now();
  let outcome: AttemptOutcome = 'success';
  pool.begin(upstream);
  const signal = AbortSignal.timeout(call.timeoutMs);
  try {
    const res = await upstream.dispatcher.request({
      path: call.path,
      method: call.method as 'POST',
      headers:
        call.body === undefined
          ? call.headers
          : { ...call.headers, 'content-length': String(call.body.length) },
      body: call.body ?? null,
      signal,
    });
    if (res.statusCode >= 500) outcome = 'http5xx';
    const body = await readLimited(res.body, call.maxBodySize);
    if (body === undefined) {
      return {
        ok: false,
        status: 502,
        code: 'TRELLIS_E_LEGACY_UNREADABLE',
        detail: 'the legacy answer is larger than the translation accepts',
        reason: `over ${call.maxBodySize} bytes`,
        upstream: name,
      };
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers))
      if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    return { ok: true, status: res.statusCode, headers, body, upstream: name };
  } catch (err) {
    const timedOut = signal.aborted;
    outcome = timedOut
      ? 'timeout'
      : (err as { code?: string }).code === 'ECONNREFUSED'
        ? 'connectFailure'
        : 'reset';
    return timedOut
      ? {
          ok: false,
          status: 504,
          code: 'TRELLIS_E_LEGACY_UNAVAILABLE',
          detail: 'the legacy system did not answer in time',
          reason: 'timeout',
          upstream: name,
        }
      : {
          ok: false,
          status: 502,
          code: 'TRELLIS_E_LEGACY_UNAVAILABLE',
          detail: 'the legacy system could not be reached',
          reason: (err as Error).message,
          upstream: name,
        };
  } finally {
    pool.end(upstream, outcome, performance.now() - started);
  }
}

/** A stream read whole, or undefined (and destroyed) once it passes `max` bytes. */
export function readLimited(body: Readable, max: number): Promise<Buffer | undefined> {
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

/**
 * The client's request body, or 'tooLarge' past `max` bytes. The rest is not read: the caller
 * answers 413 and closes the connection (destroying the request would leave no way to answer).
 */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'tooLarge'> {
  if (Number(req.headers['content-length'] ?? -1) > max) return Promise.resolve('tooLarge');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      req.pause();
      resolve('tooLarge');
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}
