import { randomFillSync } from 'node:crypto';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): a valid incoming `traceparent` is
 * continued (same trace id and flags, a new parent id for the proxy's span), anything else
 * starts a new sampled trace. `tracestate` travels on untouched.
 */

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

// Random ids are cut from one buffer refilled per 4 KiB: a randomBytes call per id (two per
// request) was a visible share of a proxied request's CPU time.
const POOL = Buffer.allocUnsafe(4096);
let used = POOL.length;

function randomHex(bytes: number): string {
  if (used + bytes > POOL.length) {
    randomFillSync(POOL);
    used = 0;
  }
  const hex = POOL.toString('hex', used, used + bytes);
  used += bytes;
  return hex;
}

/** The `traceparent` to send upstream for a request that arrived with `incoming`. */
export function nextTraceparent(incoming: string | string[] | undefined): string {
  const span = randomHex(8);
  const value = typeof incoming === 'string' ? incoming.trim().toLowerCase() : undefined;
  const m = value === undefined ? null : TRACEPARENT.exec(value);
  if (m !== null && m[1] !== 'ff' && !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!)) {
    return `00-${m[2]}-${span}-${m[4]}`;
  }
  return `00-${randomHex(16)}-${span}-01`;
}
