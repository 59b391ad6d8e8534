import type { IncomingMessage } from 'node:http';
import type { TrellisErrorCode } from '../core/errors.js';
import { exchange, upstreamTlsProblem } from '../http/exchange/index.js';
import type { ServicePool } from '../http/upstream/types.js';

/**
 * One legacy call through the forwarding exchange (src/http/exchange: upstream choice, the data
 * plane's one retry rule set, ejection feedback), its answer read whole under a size limit (a
 * translation needs the whole body). Legacy calls are mostly POSTs (SOAP), which the rule set
 * never repeats on its own; an idempotent one is retried like on any other route.
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

const isTimeout = (reason: unknown) => (reason as { name?: string } | undefined)?.name === 'TimeoutError';

export async function sendLegacy(pool: ServicePool, call: LegacySend): Promise<LegacyResult> {
  const r = await exchange(pool, {
    method: call.method,
    path: call.path,
    headers:
      call.body === undefined
        ? call.headers
        : { ...call.headers, 'content-length': String(call.body.length) },
    body: call.body,
    maxBodySize: call.maxBodySize,
    hashKey: call.hashKey,
    signal: AbortSignal.timeout(call.timeoutMs),
    isDeadline: isTimeout,
  });
  const upstream = r.upstream === undefined ? undefined : new URL(r.upstream).host;
  const at = upstream === undefined ? {} : { upstream };
  if (r.ok) {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.headers))
      if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    return { ok: true, status: r.status, headers, body: r.body, upstream: upstream ?? '' };
  }
  switch (r.failure) {
    case 'noUpstream':
      return {
        ok: false,
        status: 503,
        code: 'TRELLIS_E_LEGACY_UNAVAILABLE',
        detail: 'the legacy system has no healthy instance',
        reason: 'no upstream',
      };
    case 'tooLarge':
      return {
        ok: false,
        status: 502,
        code: 'TRELLIS_E_LEGACY_UNREADABLE',
        detail: 'the legacy answer is larger than the translation accepts',
        reason: `over ${call.maxBodySize} bytes`,
        ...at,
      };
    case 'tls': {
      const problem = upstreamTlsProblem(pool.name, r.upstream ?? '', r.tlsReason ?? '');
      return {
        ok: false,
        status: 502,
        code: 'TRELLIS_E_UPSTREAM_TLS',
        detail: problem.detail,
        reason: `TLS handshake failed: ${r.tlsReason}`,
        ...at,
      };
    }
    case 'timeout':
      return {
        ok: false,
        status: 504,
        code: 'TRELLIS_E_LEGACY_UNAVAILABLE',
        detail: 'the legacy system did not answer in time',
        reason: 'timeout',
        ...at,
      };
    default:
      return {
        ok: false,
        status: 502,
        code: 'TRELLIS_E_LEGACY_UNAVAILABLE',
        detail: 'the legacy system could not be reached',
        reason:
          r.failure === 'connect'
            ? 'connection refused or unreachable'
            : 'connection closed without an answer',
        ...at,
      };
  }
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
