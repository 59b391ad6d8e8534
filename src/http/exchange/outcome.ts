import { tlsFailureReason } from '../upstream/tls.js';
import type { AttemptOutcome } from '../upstream/types.js';

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

/** Maps an undici error to an attempt outcome. */
export function outcomeOf(err: unknown): AttemptOutcome {
  return failureOf(err).outcome;
}
