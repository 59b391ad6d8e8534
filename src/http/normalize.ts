/**
 * Path normalisation before routing, so that a route cannot be bypassed by spelling a path
 * differently (`//admin`, `/x/../admin`, `/%61dmin`). Written by hand because no maintained
 * package does the RFC 3986 steps plus the proxy-specific policy on encoded slashes; it is one
 * pass over the string and skipped entirely for the common already-clean path.
 */

/**
 * What to do with `%2F` / `%5C` (an encoded `/` or `\`) and a raw `\` inside a path: refuse,
 * read as `/` (what WHATWG URL parsers, so Node and browsers, do with `\`), or keep (a raw `\` is
 * then sent on as `%5C`, which no origin reads as a separator).
 */
export type EncodedSlashes = 'reject' | 'decode' | 'keep';

/** Why a path was refused (the listener answers 400). */
export type PathRejection =
  | 'invalid-percent-encoding'
  | 'encoded-slash'
  | 'backslash'
  | 'null-byte'
  | 'not-origin-form';

export interface NormalizedTarget {
  /** The normalised path (always starts with `/`). */
  path: string;
  /** The raw query string without `?` (empty when none). */
  query: string;
}

// A path needs work only when it has one of these: `%`, `\`, `//` or `/.` (dot segments).
const NEEDS_WORK = /[%\\]|\/\/|\/\./;

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function isUnreserved(c: number): boolean {
  return (
    (c >= 65 && c <= 90) ||
    (c >= 97 && c <= 122) ||
    (c >= 48 && c <= 57) ||
    c === 45 ||
    c === 46 ||
    c === 95 ||
    c === 126
  );
}

/**
 * Splits a request target into normalised path and raw query. Returns a PathRejection string
 * when the target must be refused. Steps: decode percent-encoded unreserved characters,
 * upper-case the remaining escapes, apply the encoded-slash policy, merge `//`, remove `.` and
 * `..` segments (never above the root).
 */
export function normalizeTarget(
  target: string,
  encodedSlashes: EncodedSlashes = 'reject',
): NormalizedTarget | PathRejection {
  if (target.charCodeAt(0) !== 47 /* / */) {
    // absolute-form (`GET http://host/path`) is legal towards a proxy; take its path.
    if (!/^https?:\/\//i.test(target)) return 'not-origin-form';
    const slash = target.indexOf('/', target.indexOf('//') + 2);
    target = slash === -1 ? '/' : target.slice(slash);
  }
  const hash = target.indexOf('#');
  if (hash !== -1) target = target.slice(0, hash);
  const q = target.indexOf('?');
  let path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q + 1);
  if (!NEEDS_WORK.test(path)) return { path, query };

  // A raw backslash first, so `\..\` is a dot segment once decoded (origins that parse with
  // WHATWG URL read `/admin\users` as `/admin/users`: routing must not see something else).
  if (path.includes('\\')) {
    if (encodedSlashes === 'reject') return 'backslash';
    path = path.replaceAll('\\', encodedSlashes === 'decode' ? '/' : '%5C');
  }
  if (path.includes('%')) {
    const decoded = decodePercents(path, encodedSlashes);
    if (decoded.charCodeAt(0) !== 47) return decoded as PathRejection;
    path = decoded;
  }
  return { path: removeDotSegments(path), query };
}

function decodePercents(path: string, encodedSlashes: EncodedSlashes): string | PathRejection {
  let out = '';
  let last = 0;
  for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i + 1)) {
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return 'invalid-percent-encoding';
    const byte = hi * 16 + lo;
    out += path.slice(last, i);
    last = i + 3;
    if (byte === 0) return 'null-byte';
    if (byte === 0x2f || byte === 0x5c) {
      if (encodedSlashes === 'reject') return 'encoded-slash';
      out += encodedSlashes === 'decode' ? '/' : `%${HEX[hi]}${HEX[lo]}`;
    } else if (isUnreserved(byte)) {
      out += String.fromCharCode(byte);
    } else {
      out += `%${HEX[hi]}${HEX[lo]}`;
    }
    i += 2;
  }
  return out + path.slice(last);
}

/** RFC 3986 5.2.4 plus merging of empty segments (`//`). Keeps a trailing slash. */
function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  const lastIndex = segments.length - 1;
  let trailingSlash = false;
  for (let i = 1; i <= lastIndex; i++) {
    const s = segments[i]!;
    if (s === '..') {
      out.pop();
      trailingSlash = i === lastIndex;
    } else if (s === '.' || s === '') {
      trailingSlash = i === lastIndex;
    } else {
      out.push(s);
      trailingSlash = false;
    }
  }
  const joined = `/${out.join('/')}`;
  return trailingSlash && out.length > 0 ? `${joined}/` : joined;
}
