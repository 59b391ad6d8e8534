import type { IncomingHttpHeaders } from 'node:http';
import { pushForwardingHeaders, socketPeer } from './forwarded.js';
import type { RequestContext } from './types.js';

/**
 * The header rules of the streaming exchange (src/http/forward.ts): what goes upstream from the
 * client's request, what comes back from the origin's answer, and 1xx relaying. Apart from the
 * exchange so each stays one job; both sides run for every proxied request, hence the care below.
 */

// Hop-by-hop headers (RFC 9110 7.6.1) plus the obsolete proxy-connection: never passed on.
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
];

// Request headers never forwarded as they are: hop-by-hop ones, ones undici sets itself, and the
// ones the gateway rewrites (host, forwarding, request id).
const DROP_REQUEST = new Set([
  ...HOP_BY_HOP,
  'proxy-authorization',
  'expect',
  'host',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-request-id',
]);

const DROP_RESPONSE = new Set([...HOP_BY_HOP, 'proxy-authenticate', 'x-request-id']);

/** Header names listed in a `Connection` header, which are hop-by-hop too. */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  // The usual values name no extra header: skip the parse on the hot path.
  if (value === undefined || value === 'keep-alive' || value === 'close' || value === 'Keep-Alive')
    return undefined;
  const tokens = new Set<string>();
  for (const t of (Array.isArray(value) ? value.join(',') : value).split(',')) {
    const x = t.trim().toLowerCase();
    if (x !== '' && x !== 'close' && x !== 'keep-alive' && x !== 'upgrade') tokens.add(x);
  }
  return tokens.size > 0 ? tokens : undefined;
}

/**
 * The headers sent upstream, as a flat `[name, value, …]` list. `replaced`: lower-case names
 * the caller sets itself on every attempt (credentials, trace context), dropped from the client's.
 */
export function upstreamRequestHeaders(
  ctx: RequestContext,
  host: string | undefined,
  replaced?: ReadonlySet<string>,
): string[] {
  const raw = ctx.req.rawHeaders;
  const headers: IncomingHttpHeaders = ctx.req.headers;
  // The headers a client named in Connection were removed at the edge (src/http/edge.ts), before
  // the middlewares ran: removing them here would let a client strip what a middleware set.
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (DROP_REQUEST.has(lower) || replaced?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  if (typeof headers.te === 'string' && /(^|,)\s*trailers\s*(,|$)/i.test(headers.te))
    out.push('te', 'trailers');
  if (host !== undefined) out.push('host', host);
  out.push('x-request-id', ctx.requestId);
  const known = socketPeer(ctx.req.socket);
  pushForwardingHeaders(out, headers, {
    peer: ctx.peer ?? known.peer,
    forNode: ctx.peer === undefined || ctx.peer === known.peer ? known.forNode : undefined,
    trustedPeer: ctx.peerTrusted === true,
    protocol: ctx.protocol,
    host: headers.host,
  });
  return out;
}

/**
 * Whether a response header name is dropped: hop-by-hop (DROP_RESPONSE) or the upstream's own
 * x-request-id. Tested by length and first letter before any lower-casing because this runs for
 * every header of every response and almost every name is kept: a Set lookup of the lower-cased
 * name cost a string allocation per header.
 */
function dropsResponseHeader(name: string): boolean {
  const first = name.charCodeAt(0) | 0x20; // ASCII lower case
  switch (name.length) {
    case 2: // te
      return first === 0x74 && DROP_RESPONSE.has(name.toLowerCase());
    case 7: // trailer, upgrade
    case 10: // connection, keep-alive
    case 12: // x-request-id
    case 16: // proxy-connection
    case 17: // transfer-encoding
    case 18: // proxy-authenticate
      return (
        (first === 0x74 ||
          first === 0x75 ||
          first === 0x63 ||
          first === 0x6b ||
          first === 0x78 ||
          first === 0x70) &&
        DROP_RESPONSE.has(name.toLowerCase())
      );
    default:
      return false;
  }
}

/** Response headers for the client from undici's raw list, hop-by-hop ones removed. */
export function clientResponseHeaders(raw: Buffer[] | string[], requestId: string): string[] {
  const out: string[] = [];
  let extra: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    if (dropsResponseHeader(name)) {
      // Only a Connection header can name more hop-by-hop headers: parsed only when present.
      if (name.length === 10 && (name.charCodeAt(0) | 0x20) === 0x63)
        extra = connectionTokens(raw[i + 1]!.toString('latin1'));
      continue;
    }
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  if (extra !== undefined) {
    for (let i = out.length - 2; i >= 0; i -= 2) {
      if (extra.has(out[i]!.toLowerCase())) out.splice(i, 2);
    }
  }
  out.push('x-request-id', requestId);
  return out;
}

/**
 * Relays a 1xx interim answer of the origin to the client before the final one (RFC 9110 15.2):
 * 103 Early Hints with its headers, 102 Processing. 100 Continue is never relayed (the gateway
 * does not forward Expect, so the client did not ask), nor is any 1xx to an HTTP/1.0 client.
 * Written with node's informational-response API, so none of it reaches the response phase
 * (nothing is cached) and the final answer follows on the same response.
 */
export function relayInformational(ctx: RequestContext, status: number, raw: Buffer[]): void {
  const res = ctx.res;
  if (ctx.req.httpVersionMinor < 1 || res.headersSent) return;
  if (status === 102) {
    res.writeProcessing();
    return;
  }
  if (status !== 103) return;
  const hints: Record<string, string | string[]> = {};
  const headers = clientResponseHeaders(raw, ctx.requestId);
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (name === 'x-request-id') continue;
    const prev = hints[name];
    hints[name] =
      prev === undefined ? headers[i + 1]! : [...(Array.isArray(prev) ? prev : [prev]), headers[i + 1]!];
  }
  // Node validates each Link value alone: a combined `<a>; rel=x, <b>; rel=y` goes as a list.
  const link = hints.link;
  if (link !== undefined)
    hints.link = (Array.isArray(link) ? link : [link]).flatMap((v) => v.split(/,\s*(?=<)/));
  try {
    res.writeEarlyHints(hints);
  } catch (err) {
    // A Link value node refuses to write: the hint is dropped, the final answer still follows.
    ctx.log.debug({ err }, 'early hints from the origin not relayed');
  }
}
