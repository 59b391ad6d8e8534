import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { TrellisError } from '../core/errors.js';

/** client-go's defaults: a lease of 15 s, a leader gives up after 10 s without a renew, retry every 2 s. */
export const DEFAULT_LEASE_DURATION = 15_000;
export const DEFAULT_RENEW_DEADLINE = 10_000;
export const DEFAULT_RETRY_PERIOD = 2_000;
/** client-go's JitterFactor: renewDeadline must leave room for at least one jittered retry. */
const JITTER_FACTOR = 1.2;

export interface ElectionTiming {
  /** How long a lease lasts without renewal; candidates wait this long before taking a silent leader's lease. */
  leaseDuration: number;
  /** How long a leader keeps trying to renew before it stops acting as leader. */
  renewDeadline: number;
  /** How often candidates try to acquire and the leader renews. */
  retryPeriod: number;
}

/** Fills defaults and checks the client-go invariants: leaseDuration > renewDeadline > 1.2 × retryPeriod. */
export function electionTiming(partial: Partial<ElectionTiming> = {}): ElectionTiming {
  const t: ElectionTiming = {
    leaseDuration: partial.leaseDuration ?? DEFAULT_LEASE_DURATION,
    renewDeadline: partial.renewDeadline ?? DEFAULT_RENEW_DEADLINE,
    retryPeriod: partial.retryPeriod ?? DEFAULT_RETRY_PERIOD,
  };
  for (const [name, v] of Object.entries(t)) {
    if (!Number.isFinite(v) || v <= 0) {
      throw invalid(`${name} must be a positive duration, got ${v}`);
    }
  }
  if (t.leaseDuration <= t.renewDeadline) {
    throw invalid(
      `leaseDuration (${t.leaseDuration}ms) must be greater than renewDeadline (${t.renewDeadline}ms): a leader must stop acting before its lease can lapse for others`,
    );
  }
  if (t.renewDeadline <= JITTER_FACTOR * t.retryPeriod) {
    throw invalid(
      `renewDeadline (${t.renewDeadline}ms) must be greater than ${JITTER_FACTOR} × retryPeriod (${t.retryPeriod}ms): the leader needs room for at least one retry`,
    );
  }
  return t;
}

function invalid(message: string): TrellisError {
  return new TrellisError('TRELLIS_E_LEADER_OPTIONS_INVALID', `${message}: adjust the election timing`);
}

/** A candidate identity unique across hosts and restarts: `host-pid-random`. */
export function defaultIdentity(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}
