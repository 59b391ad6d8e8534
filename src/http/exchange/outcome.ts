import type { Problem } from '../problem.js';
import { tlsFailureReason } from '../upstream/tls.js';
import type { AttemptOutcome, Upstream } from '../upstream/types.js';

/** How an attempt that got no answer failed, as the client is told: 504, 502 unreachable, 502 reset. */
export type FailureKind = 'timeout' | 'connect' | 'reset';

/**
 * What an undici error means for the forwarding exchange: the attempt's outcome (retry
 * condition and outlier feedback) and the kind of failure the client is told about. A connect
 * timeout is a connect failure for retries and ejection (the request never left, so it is safe
 * to send elsewhere, as Envoy's `connect-failure` does) but a timeout for the client (504).
 */
export function failureOf(err: unknown): { outcome: AttemptOutcome; kind: FailureKind } {
  switch ((err as { code?: string }).code) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EAI_AGAIN':
      return CONNECT;
    case 'UND_ERR_CONNECT_TIMEOUT':
      return CONNECT_TIMEOUT;
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'TRELLIS_TIMEOUT':
      return TIMEOUT;
    default:
      // A failed TLS handshake (unknown CA, name mismatch, certificate required): the request
      // was never processed, so it is a connect failure, safe to send to another upstream.
      return tlsFailureReason(err) === undefined ? RESET : CONNECT;
  }
}

const CONNECT = { outcome: 'connectFailure', kind: 'connect' } as const;
const CONNECT_TIMEOUT = { outcome: 'connectFailure', kind: 'timeout' } as const;
const TIMEOUT = { outcome: 'timeout', kind: 'timeout' } as const;
const RESET = { outcome: 'reset', kind: 'reset' } as const;

/**
 * Why the TLS handshake with `upstream` failed, or undefined when `err` is no TLS failure: the
 * one test every user of the exchange (streaming, buffered, upgrade) makes. A TLS 1.3 server
 * refusing the client certificate shows only as a fresh connection closed before any byte: the
 * alert the pool's connector noted on the upstream says what it was.
 */
export function tlsFailureOf(err: unknown, upstream: Upstream): string | undefined {
  const direct = tlsFailureReason(err);
  if (direct !== undefined || upstream.origin.protocol !== 'https:') return direct;
  const e = err as { code?: string; socket?: { bytesRead?: number } };
  const fresh = e.code === 'UND_ERR_SOCKET' && e.socket?.bytesRead === 0;
  return fresh ? (upstream.recentTlsFailure?.() ?? tlsFailureReason(err, true)) : undefined;
}

/** The client's problem for a failed TLS handshake with an upstream: 502 TRELLIS_E_UPSTREAM_TLS. */
export function upstreamTlsProblem(
  service: string,
  upstream: string,
  reason: string,
): Problem & { detail: string } {
  return {
    status: 502,
    code: 'TRELLIS_E_UPSTREAM_TLS',
    detail: `service "${service}": the TLS handshake with ${upstream} failed: ${reason}`,
  };
}

/** Maps an undici error to an attempt outcome. */
export function outcomeOf(err: unknown): AttemptOutcome {
  return failureOf(err).outcome;
}
