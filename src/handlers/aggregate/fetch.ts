import { exchange, upstreamTlsProblem } from '../../http/exchange/index.js';
import type { ServicePool } from '../../http/upstream/types.js';
import type { Cancel } from './cancel.js';

/** Why a call of a part did not produce a usable JSON body. */
export type FailureReason =
  | 'timeout'
  | 'status'
  | 'connect'
  | 'tls'
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

const isDeadline = (reason: unknown) => reason === DEADLINE;
const is2xx = (status: number) => status >= 200 && status < 300;

/**
 * One call of a part through the forwarding exchange (src/http/exchange: upstream choice,
 * retries by the data plane's one rule set, ejection feedback), then its JSON body. Aggregation
 * adds one rule of its own: the unsafe last step runs once, never retried, even a PUT or DELETE
 * that the rule set would allow (a composed write must not be repeated behind the client's back).
 */
export async function callService(pool: ServicePool, call: Call): Promise<CallResult> {
  const r = await exchange(pool, {
    method: call.method,
    path: call.path,
    headers: call.headers,
    body: call.body,
    maxBodySize: call.maxBodySize,
    hashKey: call.hashKey,
    retry: SAFE.has(call.method),
    signal: call.signal,
    isDeadline,
    // A failed part needs no body: it is drained unread.
    readBody: is2xx,
  });
  if (!r.ok) {
    switch (r.failure) {
      case 'noUpstream':
        return { ok: false, reason: 'connect', detail: `service "${pool.name}" has no upstreams` };
      case 'connect':
        return { ok: false, reason: 'connect', detail: 'could not be reached' };
      case 'tls':
        return {
          ok: false,
          reason: 'tls',
          detail: `failed: ${upstreamTlsProblem(pool.name, r.upstream ?? '', r.tlsReason ?? '').detail}`,
        };
      case 'reset':
        return { ok: false, reason: 'reset', detail: 'closed the connection' };
      case 'timeout':
        return { ok: false, reason: 'timeout', detail: 'did not answer in time' };
      case 'aborted':
        return { ok: false, reason: 'aborted', detail: 'the request was cancelled' };
      case 'tooLarge':
        return { ok: false, reason: 'tooLarge', detail: `answered with more than ${call.maxBodySize} bytes` };
    }
  }
  if (!is2xx(r.status)) {
    return { ok: false, reason: 'status', status: r.status, detail: `answered ${r.status}` };
  }
  if (r.status === 204 || r.body.length === 0) return { ok: true, body: null, text: 'null' };
  const text = r.body.toString('utf8');
  try {
    return { ok: true, body: JSON.parse(text), text };
  } catch {
    return { ok: false, reason: 'invalidJson', detail: 'answered with a body that is not JSON' };
  }
}
