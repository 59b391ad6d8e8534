import { createHash } from 'node:crypto';

/**
 * Sticky canary decisions. A request's key (a header, a cookie, a JWT claim or the client IP) is
 * hashed with the route's name into one of 10,000 buckets; the key goes to the modern side when
 * its bucket is below `weight` per cent. The same key gets the same answer on every request and
 * on every gateway instance (no shared state, no randomness), and raising the weight only adds
 * keys: a key on the modern side at 10 % stays there at 50 %.
 */

export const BUCKETS = 10_000;

/** The bucket (0..9999) of a key on a route. */
export function bucketOf(route: string, key: string): number {
  // SHA-256 rather than a fast non-cryptographic hash: a client must not be able to pick keys
  // that land where it wants, and one digest per request is about a microsecond.
  const digest = createHash('sha256').update(route).update('\0').update(key).digest();
  return digest.readUInt32BE(0) % BUCKETS;
}

/** Whether a key goes to the modern side at `weight` per cent (0..100, two decimals). */
export function toModern(route: string, key: string, weight: number): boolean {
  if (weight <= 0) return false;
  if (weight >= 100) return true;
  return bucketOf(route, key) < Math.round(weight * 100);
}
