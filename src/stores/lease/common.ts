import { TrellisError } from '../../core/errors.js';
import type { Lease } from '../types.js';

/** Rejects names, holders and TTLs a backend cannot store faithfully. */
export function checkLeaseArgs(name: string, holder: string, ttlMs?: number): void {
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > 512) {
    throw new TrellisError(
      'TRELLIS_E_LEASE_INVALID',
      'a lease name must be a non-empty string of at most 512 bytes',
    );
  }
  if (typeof holder !== 'string' || holder.length === 0 || Buffer.byteLength(holder) > 512) {
    throw new TrellisError(
      'TRELLIS_E_LEASE_INVALID',
      'a lease holder must be a non-empty string of at most 512 bytes',
    );
  }
  if (ttlMs !== undefined && !(Number.isSafeInteger(ttlMs) && ttlMs > 0)) {
    throw new TrellisError(
      'TRELLIS_E_LEASE_INVALID',
      `a lease TTL must be a positive whole number of milliseconds, got ${ttlMs}`,
    );
  }
}

/** The error renew throws when the lease lapsed or another holder (or a later token) has it. */
export function leaseLost(lease: Pick<Lease, 'name' | 'holder' | 'token'>, why: string): TrellisError {
  return new TrellisError(
    'TRELLIS_E_LEASE_LOST',
    `lease "${lease.name}" (token ${lease.token}) is no longer held by "${lease.holder}": ${why}; stop acting as its holder and acquire it again`,
    { status: 409, details: { name: lease.name, holder: lease.holder, token: lease.token } },
  );
}
