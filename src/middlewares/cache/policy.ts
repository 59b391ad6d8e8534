/**
 * The parts of RFC 9111 a shared cache needs: is a response storable, how long is it fresh,
 * how old is it, may it be served stale. Written here because the well-known library for it
 * (http-cache-semantics) is not a dependency and undici keeps its cache helpers internal; the
 * rules below are the RFC's, section numbers in comments.
 */

export type Directives = Map<string, string | true>;

/** Parses a Cache-Control value; unknown directives are kept, malformed ones ignored (5.2). */
export function parseCacheControl(value: unknown): Directives {
  const out: Directives = new Map();
  if (value === undefined) return out;
  const s = Array.isArray(value) ? value.join(',') : String(value);
  for (const part of s.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (!name) continue;
    const raw =
      eq === -1
        ? true
        : part
            .slice(eq + 1)
            .trim()
            .replace(/^"(.*)"$/, '$1');
    // A directive given twice is treated as invalid in most caches; keep the first (4.2.1).
    if (!out.has(name)) out.set(name, raw);
  }
  return out;
}

/** A delta-seconds directive value, or undefined when absent or malformed (1.2.2). */
export function seconds(d: Directives, name: string): number | undefined {
  const v = d.get(name);
  if (typeof v !== 'string' || !/^\d+$/.test(v)) return undefined;
  return Math.min(Number(v), 2 ** 31);
}

/** Status codes that are cacheable without explicit freshness (RFC 9110 15.1). */
const HEURISTIC_STATUSES = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);

export interface StoreDecision {
  store: boolean;
  reason?: string;
}

export interface StorableInput {
  status: number;
  method: string;
  responseCc: Directives;
  requestCc: Directives;
  hasAuthorization: boolean;
  hasSetCookie: boolean;
  vary: string[] | '*';
  lifetime: number;
  hasValidator: boolean;
  cacheAuthorized: boolean;
  cacheSetCookie: boolean;
}

/** RFC 9111 3 (storing) and 3.5 (Authorization) for a shared cache. */
export function storable(i: StorableInput): StoreDecision {
  if (i.method !== 'GET') return { store: false, reason: 'method' };
  if (i.status === 206 || i.status < 200 || (!HEURISTIC_STATUSES.has(i.status) && i.lifetime <= 0))
    return { store: false, reason: 'status' };
  if (i.responseCc.has('no-store') || i.requestCc.has('no-store'))
    return { store: false, reason: 'no-store' };
  if (i.responseCc.has('private')) return { store: false, reason: 'private' };
  if (i.vary === '*') return { store: false, reason: 'vary *' };
  if (
    i.hasAuthorization &&
    !i.cacheAuthorized &&
    !(i.responseCc.has('public') || i.responseCc.has('s-maxage') || i.responseCc.has('must-revalidate'))
  )
    return { store: false, reason: 'authorization' };
  if (i.hasSetCookie && !i.cacheSetCookie) return { store: false, reason: 'set-cookie' };
  // Nothing to gain from storing what is never fresh and cannot be revalidated.
  if (i.lifetime <= 0 && !i.hasValidator) return { store: false, reason: 'no freshness' };
  return { store: true };
}

/** Freshness lifetime in seconds: s-maxage, max-age, then Expires - Date (4.2.1); no heuristics. */
export function freshnessLifetime(cc: Directives, headers: Record<string, unknown>, now: number): number {
  if (cc.has('no-cache')) return 0;
  const s = seconds(cc, 's-maxage') ?? seconds(cc, 'max-age');
  if (s !== undefined) return s;
  const expires = headers.expires;
  if (typeof expires === 'string') {
    const e = Date.parse(expires);
    // An invalid Expires (like "0") means already expired (5.3).
    if (Number.isNaN(e)) return 0;
    const dateHeader = typeof headers.date === 'string' ? Date.parse(headers.date) : Number.NaN;
    const base = Number.isNaN(dateHeader) ? now : dateHeader;
    return Math.max(0, Math.floor((e - base) / 1000));
  }
  return 0;
}

/** The Age the response had when it arrived (4.2.3, simplified: upstream Age, else 0). */
export function initialAge(headers: Record<string, unknown>): number {
  const v = headers.age;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : 0;
  return n;
}

/** Parses Vary into lower-case header names, or `*`. */
export function parseVary(value: unknown): string[] | '*' {
  if (value === undefined) return [];
  const names = (Array.isArray(value) ? value.join(',') : String(value))
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter(Boolean);
  if (names.includes('*')) return '*';
  return [...new Set(names)].sort();
}
