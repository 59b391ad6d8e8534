import type { IncomingMessage } from 'node:http';
import { asksForH2c } from './upgrade.js';

/**
 * Request-head strictness at the edge, run once per request before routing and before any
 * middleware: what node's parser lets through but a gateway must not forward (RFC 9112 request
 * line and Host rules, duplicate credentials, underscore twins of trusted headers), and the
 * hop-by-hop headers a client names in `Connection`, removed here so that no later step can
 * remove a header the gateway itself set. Node's parser already refuses HTTP/1.2+ minor
 * versions, bad header syntax, CL/TE conflicts and a backslash in an absolute-form authority;
 * this covers the rest. One pass over `rawHeaders`, no allocation for a well-formed request.
 */

/** The edge policy of one listener (from its `listen:` block). */
export interface EdgePolicy {
  /** `drop` (default, as nginx does): request headers whose name has `_` are removed; `keep`. */
  headersWithUnderscores: 'drop' | 'keep';
  /** Whether TRACE requests are routed (default false: 405 at the edge). */
  allowTrace: boolean;
}

/** Why a request is refused at the edge: the status and problem the listener answers with. */
export interface EdgeRefusal {
  status: number;
  code: string;
  detail: string;
  headers?: Record<string, string>;
}

// A Host / absolute-form authority: a DNS-style name, IPv4 or a bracketed IPv6 literal, and an
// optional port. Stricter than RFC 3986's reg-name on purpose: a comma, space, `@` or `\` in an
// authority is how one request is read as two different hosts by two parsers.
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$/;

// Headers a client may not nominate as hop-by-hop: they frame or route this very request.
const NOT_NOMINABLE = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade']);

/**
 * Admits a request head or says why not. Side effects on an admitted request: headers with `_`
 * (unless kept) and headers named in `Connection` are removed from `headers` and `rawHeaders`,
 * and `Connection` keeps only its own tokens (close, keep-alive, upgrade).
 */
export function admitRequest(req: IncomingMessage, policy: EdgePolicy): EdgeRefusal | undefined {
  if (req.httpVersionMajor !== 1) {
    if (req.httpVersionMajor === 0) {
      return bad('the request line has no HTTP version (HTTP/0.9 is not served)');
    }
    return {
      status: 505,
      code: 'TRELLIS_E_HTTP_VERSION',
      detail: `HTTP/${req.httpVersion} is not supported on an HTTP/1.1 connection`,
    };
  }
  if (req.method === 'TRACE' && !policy.allowTrace) {
    return {
      status: 405,
      code: 'TRELLIS_E_METHOD_NOT_ALLOWED',
      detail: 'TRACE is refused at the edge (it would echo credentials back)',
      headers: { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' },
    };
  }
  // h2c would switch the connection to HTTP/2 straight to the origin, past every route.
  if (req.headers.upgrade !== undefined && asksForH2c(req.headers.upgrade)) {
    return {
      status: 400,
      code: 'TRELLIS_E_UPGRADE_REFUSED',
      detail: 'h2c upgrades are refused: speak HTTP/1.1, or HTTP/2 over TLS',
    };
  }
  const raw = req.rawHeaders;
  let hosts = 0;
  let authorizations = 0;
  let underscores = false;
  let connection = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const first = name.charCodeAt(0) | 0x20;
    // Compared by length and first letter before lower-casing: this runs for every header.
    if (name.length === 4 && first === 0x68 && name.toLowerCase() === 'host') hosts++;
    else if (name.length === 13 && first === 0x61 && name.toLowerCase() === 'authorization') authorizations++;
    else if (name.length === 10 && first === 0x63 && name.toLowerCase() === 'connection') connection = true;
    if (name.indexOf('_') !== -1) underscores = true;
  }
  if (hosts > 1) return bad('the request has more than one Host header');
  if (authorizations > 1) return bad('the request has more than one Authorization header');
  const host = req.headers.host ?? '';
  // HTTP/1.0 may come without Host (node requires it from 1.1 on).
  if (!AUTHORITY.test(host) && (host !== '' || req.httpVersionMinor !== 0)) {
    return bad('the Host header is not a valid host[:port]');
  }
  const url = req.url ?? '/';
  if (url.charCodeAt(0) !== 47 /* / */ && /^https?:\/\//i.test(url)) {
    const refusal = checkAbsoluteForm(url, host);
    if (refusal !== undefined) return refusal;
  }
  if (underscores && policy.headersWithUnderscores === 'drop') dropHeaders(req, (n) => n.includes('_'));
  if (connection) stripNominated(req);
  return undefined;
}

/** An absolute-form target's authority must be valid and name the same host as `Host`. */
function checkAbsoluteForm(url: string, host: string): EdgeRefusal | undefined {
  const https = (url.charCodeAt(4) | 0x20) === 0x73;
  const start = https ? 8 : 7;
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 || c === 63 || c === 35) break; // / ? #
    end++;
  }
  const authority = url.slice(start, end);
  if (!AUTHORITY.test(authority)) return bad('the request target has an invalid authority');
  if (withoutDefaultPort(authority, https) !== withoutDefaultPort(host, https)) {
    return bad('the request target names another host than the Host header');
  }
  return undefined;
}

function withoutDefaultPort(authority: string, https: boolean): string {
  const lower = authority.toLowerCase();
  const port = https ? ':443' : ':80';
  return lower.endsWith(port) ? lower.slice(0, -port.length) : lower;
}

/** Removes the headers a client named in `Connection` (RFC 9110 7.6.1) and trims `Connection`. */
function stripNominated(req: IncomingMessage): void {
  const value = req.headers.connection;
  // The usual values name no other header: no parse on the hot path.
  if (value === undefined || value === 'keep-alive' || value === 'close' || value === 'Keep-Alive') return;
  const nominated = new Set<string>();
  const kept: string[] = [];
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase();
    if (token === '') continue;
    if (token === 'close' || token === 'keep-alive' || token === 'upgrade') kept.push(token);
    else if (!NOT_NOMINABLE.has(token)) nominated.add(token);
  }
  if (nominated.size === 0) return;
  dropHeaders(req, (n) => nominated.has(n));
  const trimmed = kept.join(', ');
  const raw = req.rawHeaders;
  for (let i = raw.length - 2; i >= 0; i -= 2) {
    if (raw[i]!.toLowerCase() !== 'connection') continue;
    if (trimmed === '') raw.splice(i, 2);
    else raw[i + 1] = trimmed;
  }
  if (trimmed === '') delete req.headers.connection;
  else req.headers.connection = trimmed;
}

/** Removes every header whose lower-cased name passes `drop`, from both header views. */
function dropHeaders(req: IncomingMessage, drop: (lowerName: string) => boolean): void {
  const raw = req.rawHeaders;
  const headers = req.headers;
  for (let i = raw.length - 2; i >= 0; i -= 2) {
    const lower = raw[i]!.toLowerCase();
    if (!drop(lower)) continue;
    raw.splice(i, 2);
    delete headers[lower];
  }
}

// Connections whose request was refused at the edge. Node may already have parsed (and will
// still emit) requests pipelined behind the refused one: none of them may be served.
const refusedSockets = new WeakSet<object>();

/** Marks a connection as refused: it closes after the refusal, and nothing else on it is served. */
export function refuseConnection(socket: object): void {
  refusedSockets.add(socket);
}

/** Whether a request arrived on a connection that was refused already (drop it unanswered). */
export function onRefusedConnection(socket: object): boolean {
  return refusedSockets.has(socket);
}

function bad(detail: string): EdgeRefusal {
  return { status: 400, code: 'TRELLIS_E_BAD_REQUEST', detail };
}
