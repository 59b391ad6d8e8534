import type { RequestContext } from '../http/types.js';
import type { StickyKey } from './options.js';

/**
 * The sticky key of a request: the value that keeps one client on one side of a canary (see
 * sticky.ts). A request without the chosen value (no header, no cookie, no JWT middleware before
 * the route) falls back to its client IP, so it is still sticky rather than random.
 */
export function stickyKeyFunction(key: StickyKey): (ctx: RequestContext) => string {
  if (key === 'ip') return (ctx) => `ip:${ctx.clientIp}`;
  if ('header' in key) {
    const h = key.header.toLowerCase();
    return (ctx) => {
      const v = ctx.req.headers[h];
      const s = Array.isArray(v) ? v[0] : v;
      return s ? `h:${s}` : `ip:${ctx.clientIp}`;
    };
  }
  if ('cookie' in key) {
    const name = key.cookie;
    return (ctx) => {
      const v = cookieValue(ctx.req.headers.cookie, name);
      return v ? `c:${v}` : `ip:${ctx.clientIp}`;
    };
  }
  const claim = key.jwtClaim;
  return (ctx) => {
    const v = (ctx.state.jwt as Record<string, unknown> | undefined)?.[claim];
    return v === undefined || v === null ? `ip:${ctx.clientIp}` : `jwt:${String(v)}`;
  };
}

/**
 * One cookie's value from a Cookie header (RFC 6265 5.4: `a=1; b=2`). Written here because only
 * one name is wanted per request: a full parser would allocate an object of every cookie.
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  let at = 0;
  while (at < header.length) {
    let end = header.indexOf(';', at);
    if (end === -1) end = header.length;
    const eq = header.indexOf('=', at);
    if (eq !== -1 && eq < end && header.slice(at, eq).trim() === name) {
      let v = header.slice(eq + 1, end).trim();
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      return v;
    }
    at = end + 1;
  }
  return undefined;
}
