import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export type Access = 'read' | 'write';

export interface TokenPolicy {
  /** Token for reads (the write token reads too). Absent: reads need no token. */
  readToken?: string;
  /** Token for writes. Absent: writes need no token (only for local development). */
  writeToken?: string;
}

/** Compares in constant time: both sides hashed first, so neither the content nor the length leaks. */
function same(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** `ok`, or why the request may not do this: no token (401) or the wrong one (403). */
export function authorize(req: IncomingMessage, access: Access, policy: TokenPolicy): 'ok' | 401 | 403 {
  const header = req.headers.authorization;
  const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
  const write = policy.writeToken;
  const read = policy.readToken;
  if (access === 'write') {
    if (write === undefined) return 'ok';
    if (token === undefined) return 401;
    return same(token, write) ? 'ok' : 403;
  }
  if (read === undefined) return 'ok';
  if (token === undefined) return 401;
  // Evaluate both comparisons so timing does not tell which token matched.
  const r = same(token, read);
  const w = write !== undefined && same(token, write);
  return r || w ? 'ok' : 403;
}
