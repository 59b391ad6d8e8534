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

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const LONG_DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const IMF_FIXDATE = /^([A-Z][a-z]{2}), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC_850 = /^([A-Z][a-z]{5,8}), (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME = /^([A-Z][a-z]{2}) ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/**
 * An HTTP-date (RFC 9110 5.6.7) in milliseconds, or NaN: IMF-fixdate, and the obsolete RFC 850
 * and asctime forms, exactly as written there. Why not `Date.parse`: it accepts almost anything
 * (`UTC` for `GMT`, a missing comma, doubled spaces, one-digit hours), so an invalid `Expires`,
 * which means "already expired", became a date in the future.
 */
export function parseHttpDate(value: unknown): number {
  if (typeof value !== 'string') return Number.NaN;
  const parts = imfFixdate(value) ?? rfc850(value) ?? asctime(value);
  if (parts === undefined) return Number.NaN;
  const { day, month, year } = parts;
  const [hh, mm, ss] = parts.time.map(Number) as [number, number, number];
  if (month < 0 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60) return Number.NaN;
  const t = Date.UTC(year, month, day, hh, mm, Math.min(ss, 59));
  // 31 Feb and the like roll over in Date.UTC: refuse them.
  if (new Date(t).getUTCDate() !== day) return Number.NaN;
  return t;
}

interface DateParts {
  day: number;
  month: number;
  year: number;
  time: string[];
}

function imfFixdate(value: string): DateParts | undefined {
  const m = IMF_FIXDATE.exec(value);
  if (!m || !DAYS.includes(m[1]!)) return undefined;
  return { day: Number(m[2]), month: MONTHS.indexOf(m[3]!), year: Number(m[4]), time: m.slice(5, 8) };
}

function rfc850(value: string): DateParts | undefined {
  const m = RFC_850.exec(value);
  if (!m || !LONG_DAYS.includes(m[1]!)) return undefined;
  // RFC 9110 5.6.7: a two-digit year more than 50 years in the future is in the past century.
  const yy = Number(m[4]);
  const year = 2000 + yy > new Date().getUTCFullYear() + 50 ? 1900 + yy : 2000 + yy;
  return { day: Number(m[2]), month: MONTHS.indexOf(m[3]!), year, time: m.slice(5, 8) };
}

function asctime(value: string): DateParts | undefined {
  const m = ASCTIME.exec(value);
  if (!m || !DAYS.includes(m[1]!)) return undefined;
  return { day: Number(m[3]!.trim()), month: MONTHS.indexOf(m[2]!), year: Number(m[7]), time: m.slice(4, 7) };
}

/** The response's Date in ms, or `fallback` when absent or invalid (RFC 9110 6.6.1). */
export function dateOf(headers: Record<string, unknown>, fallback: number): number {
  const d = parseHttpDate(first(headers.date));
  return Number.isNaN(d) ? fallback : d;
}

function first(v: unknown): unknown {
  return Array.isArray(v) ? v[0] : v;
}

/** Heuristic freshness (4.2.2): a fraction of the time since Last-Modified, capped. */
export interface Heuristic {
  /** Fraction of (Date - Last-Modified); RFC 9111 suggests 10%. */
  fraction: number;
  /** Most seconds a heuristic lifetime may be (0: no heuristic freshness). */
  max: number;
}

/**
 * Freshness lifetime in seconds (4.2.1): s-maxage, max-age, then Expires - Date (the stored
 * Date, not the arrival time); without any, a heuristic from Last-Modified for statuses that
 * are heuristically cacheable (or marked `public`), else 0.
 */
export function freshnessLifetime(
  cc: Directives,
  headers: Record<string, unknown>,
  now: number,
  status = 200,
  heuristic: Heuristic = { fraction: 0, max: 0 },
): number {
  if (cc.has('no-cache')) return 0;
  const s = seconds(cc, 's-maxage') ?? seconds(cc, 'max-age');
  if (s !== undefined) return s;
  const date = dateOf(headers, now);
  if (headers.expires !== undefined) {
    const e = parseHttpDate(first(headers.expires));
    // An invalid Expires (like "0", or a date in a wrong format) means already expired (5.3).
    if (Number.isNaN(e)) return 0;
    return Math.max(0, Math.floor((e - date) / 1000));
  }
  if (heuristic.max > 0 && (HEURISTIC_STATUSES.has(status) || cc.has('public'))) {
    const lm = parseHttpDate(first(headers['last-modified']));
    if (!Number.isNaN(lm) && lm < date)
      return Math.min(heuristic.max, Math.floor(((date - lm) / 1000) * heuristic.fraction));
  }
  return 0;
}

/**
 * The Age the response had when it arrived (4.2.3): the larger of the apparent age (arrival
 * minus Date) and the Age header plus the time the request took. A repeated or listed Age
 * (`7200, 0`) counts by its first value; an invalid one is ignored.
 */
export function initialAge(headers: Record<string, unknown>, now = Date.now(), requestedAt = now): number {
  const raw = first(headers.age);
  const v = typeof raw === 'string' ? raw.split(',')[0]!.trim() : typeof raw === 'number' ? String(raw) : '';
  const ageValue = /^\d+$/.test(v) ? Math.min(Number(v), 2 ** 31) : 0;
  const date = parseHttpDate(first(headers.date));
  const apparent = Number.isNaN(date) ? 0 : Math.max(0, Math.floor((now - date) / 1000));
  const delay = Math.max(0, (now - requestedAt) / 1000);
  return Math.max(apparent, ageValue + delay);
}

/**
 * The Cache-Control a shared cache obeys: `CDN-Cache-Control` when the response has a valid one
 * (RFC 9213: it is aimed at CDNs and gateways like this one, and then replaces Cache-Control
 * for them; Cache-Control still goes on to clients), else `Cache-Control`.
 */
export function effectiveCacheControl(headers: Record<string, unknown>): Directives {
  const targeted = headers['cdn-cache-control'];
  if (targeted !== undefined) {
    const d = parseCacheControl(targeted);
    if (d.size > 0) return d;
  }
  return parseCacheControl(headers['cache-control']);
}

/** What a request's own Cache-Control allows (5.2.1), for one stored response. */
export interface RequestAllowance {
  /** The request demands revalidation (`no-cache`) or a younger response (`max-age`). */
  revalidate: boolean;
  /** Seconds of staleness the client accepts (`max-stale`; Infinity without a value). */
  maxStale: number;
  /** Seconds the response must still be fresh for (`min-fresh`). */
  minFresh: number;
  /** `only-if-cached`: never go upstream; 504 when nothing suitable is stored. */
  onlyIfCached: boolean;
}

/** Reads the request directives; `age` is the stored response's current age in seconds. */
export function requestAllowance(rc: Directives, age: number): RequestAllowance {
  const maxAge = seconds(rc, 'max-age');
  const stale = rc.get('max-stale');
  return {
    revalidate: rc.has('no-cache') || (maxAge !== undefined && age > maxAge),
    maxStale: stale === true ? Number.POSITIVE_INFINITY : (seconds(rc, 'max-stale') ?? 0),
    minFresh: seconds(rc, 'min-fresh') ?? 0,
    onlyIfCached: rc.has('only-if-cached'),
  };
}

/** One satisfiable byte range, inclusive, or why there is none (RFC 9110 14.1.2, 14.2). */
export type RangeChoice = { start: number; end: number } | 'unsatisfiable' | 'ignore';

/**
 * A single `bytes=` range against a body of `length` bytes. Several ranges, other units and
 * malformed values are answered with the whole body ('ignore'), which RFC 9110 14.2 allows.
 */
export function byteRange(value: unknown, length: number): RangeChoice {
  if (typeof value !== 'string') return 'ignore';
  const m = /^bytes=[ \t]*(\d*)-(\d*)[ \t]*$/i.exec(value);
  if (!m || (m[1] === '' && m[2] === '')) return 'ignore';
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, length - suffix), end: length - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? length - 1 : Math.min(Number(m[2]), length - 1);
  if (m[2] !== '' && Number(m[2]) < start) return 'ignore';
  if (start >= length) return 'unsatisfiable';
  return { start, end };
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
