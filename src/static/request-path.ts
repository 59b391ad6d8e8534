/**
 * Turns the request path into the relative file path the handler looks up, or refuses it.
 * The gateway has already normalised the path (dot segments removed, unreserved characters
 * decoded, `%2F`/`%5C` refused by default), but this handler must stay safe under every
 * gateway setting and when used on its own, so it decodes each segment itself exactly once and
 * refuses anything that could name a file outside the root: `..`/`.` segments after decoding,
 * `/` or `\` inside a segment, NUL and other control characters, malformed or overlong UTF-8
 * (decodeURIComponent throws on those). Double encoding (`%252e`) stays a literal `%2e` name.
 * Written by hand: `send`'s equivalent is not usable outside its own response code.
 */

/** Why a path was refused: `malformed` answers 400, `denied` answers 404 (nothing revealed). */
export type PathRefusal = 'malformed' | 'denied';

export interface StaticPath {
  /** Decoded relative path without a leading slash (`''` is the root). */
  readonly rel: string;
  /** The request named a directory (trailing slash). */
  readonly dir: boolean;
}

// Printable ASCII minus `%` and `\`: such a path needs no decoding and no checks but dot segments.
const PLAIN = /^[\x21-\x24\x26-\x5b\x5d-\x7e/]*$/;
// Control characters (C0, DEL, C1) are never part of a file name we serve.
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;

/**
 * Resolves `path` (starting with `/`) to a relative path. `dotfiles: false` refuses any segment
 * starting with `.` except `.well-known` (RFC 8615); `.trellis` (publish metadata) is always refused.
 */
export function toStaticPath(path: string, dotfiles: boolean): StaticPath | PathRefusal {
  if (path.charCodeAt(0) !== 47) return 'malformed';
  const dir = path.length > 1 && path.charCodeAt(path.length - 1) === 47;
  const body = path.slice(1, dir ? -1 : undefined);
  if (body === '') return { rel: '', dir: true };
  const plain = PLAIN.test(body);
  const raw = body.split('/');
  const segments: string[] = [];
  for (const r of raw) {
    let s = r;
    if (!plain) {
      try {
        s = decodeURIComponent(r);
      } catch {
        return 'malformed';
      }
      if (CONTROL.test(s)) return 'malformed';
      if (s.includes('/') || s.includes('\\')) return 'denied';
    }
    if (s === '' || s === '.' || s === '..') return 'denied';
    if (s.charCodeAt(0) === 46 /* . */) {
      if (s === '.trellis') return 'denied';
      if (!dotfiles && !(s === '.well-known' && segments.length === 0)) return 'denied';
    }
    segments.push(s);
  }
  return { rel: segments.join('/'), dir };
}

/** The file name's extension without the dot (`''` when none), for the SPA rule. */
export function extensionOf(rel: string): string {
  const slash = rel.lastIndexOf('/');
  const dot = rel.lastIndexOf('.');
  return dot > slash + 1 ? rel.slice(dot + 1) : '';
}
