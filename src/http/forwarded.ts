import type { IncomingHttpHeaders } from 'node:http';
import { BlockList, isIPv4, isIPv6 } from 'node:net';

/**
 * Which peers may tell us who the client is (X-Forwarded-*, Forwarded). Everyone else's claims
 * are replaced, never passed on, so a client cannot forge its address to an origin that trusts
 * the gateway. node:net's BlockList does the CIDR matching.
 */
export class TrustedProxies {
  private readonly list = new BlockList();
  /** False when no proxy is trusted: the common case takes a shortcut. */
  readonly any: boolean;

  /** `cidrs`: addresses or CIDR ranges, IPv4 or IPv6 (`10.0.0.0/8`, `127.0.0.1`, `::1`). */
  constructor(cidrs: readonly string[] = []) {
    for (const c of cidrs) {
      const [addr, bits] = c.split('/');
      const type = isIPv6(addr!) ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.list.addAddress(addr!, type);
      else this.list.addSubnet(addr!, Number(bits), type);
    }
    this.any = cidrs.length > 0;
  }

  /** Whether `ip` (as the socket reports it) is a trusted proxy. */
  trusts(ip: string): boolean {
    if (!this.any || ip === '') return false;
    if (isIPv4(ip)) return this.list.check(ip, 'ipv4');
    const mapped = ip.startsWith('::ffff:') ? ip.slice(7) : undefined;
    if (mapped !== undefined && isIPv4(mapped)) return this.list.check(mapped, 'ipv4');
    return isIPv6(ip) && this.list.check(ip, 'ipv6');
  }
}

/** The socket's address without the IPv4-mapped `::ffff:` prefix. */
export function peerAddress(remote: string | undefined): string {
  if (remote === undefined) return '';
  return remote.startsWith('::ffff:') && isIPv4(remote.slice(7)) ? remote.slice(7) : remote;
}

/** What the forwarding headers say about a connection's peer, worked out once per socket. */
export interface SocketPeer {
  /** The peer address (see peerAddress). */
  readonly peer: string;
  /** The peer as a `Forwarded: for=` value (IPv6 quoted and bracketed). */
  readonly forNode: string;
}

// Keep-alive connections carry many requests from one peer: the address, its IPv4/IPv6 tests
// and the quoting are done on the first request and kept on the socket.
const SOCKET_PEER = Symbol('trellis.socketPeer');
type WithPeer = { remoteAddress?: string | undefined; [SOCKET_PEER]?: SocketPeer };

/** The peer of `socket`, computed on the first call and remembered on the socket. */
export function socketPeer(socket: { remoteAddress?: string | undefined }): SocketPeer {
  const s = socket as WithPeer;
  let known = s[SOCKET_PEER];
  // remoteAddress is undefined once the socket is destroyed: do not remember that.
  if (known === undefined) {
    const peer = peerAddress(s.remoteAddress);
    known = { peer, forNode: forwardedFor(peer) };
    if (peer !== '') s[SOCKET_PEER] = known;
  }
  return known;
}

/**
 * The client address: the peer, or, when the peer is trusted, the right-most address in
 * X-Forwarded-For that is not itself a trusted proxy.
 */
export function clientAddress(peer: string, headers: IncomingHttpHeaders, trusted: TrustedProxies): string {
  if (!trusted.trusts(peer)) return peer;
  const xff = headers['x-forwarded-for'];
  if (typeof xff !== 'string' || xff === '') return peer;
  const hops = xff.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const ip = hops[i]!.trim();
    if (ip === '' || !(isIPv4(ip) || isIPv6(ip))) return peer;
    if (!trusted.trusts(ip)) return ip;
  }
  return hops[0]!.trim() || peer;
}

/** What the forwarding headers sent upstream say. */
export interface ForwardedFacts {
  peer: string;
  /** `peer` as a `for=` value, when already known (see socketPeer). */
  forNode?: string | undefined;
  trustedPeer: boolean;
  protocol: 'http' | 'https';
  host: string | undefined;
}

/** `Forwarded` node: IPv6 addresses are quoted and bracketed (RFC 7239 section 6). */
function forwardedFor(ip: string): string {
  return isIPv6(ip) ? `"[${ip}]"` : ip;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// The Host header of a gateway rarely changes: remember the last one quoted.
let lastHost = '';
let lastQuoted = '';

function quoteIfNeeded(value: string): string {
  if (value === lastHost) return lastQuoted;
  lastHost = value;
  lastQuoted = TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`;
  return lastQuoted;
}

/**
 * Appends the four forwarding headers to a flat `[name, value, …]` header list. A trusted peer's
 * values are extended; an untrusted peer's are replaced.
 */
export function pushForwardingHeaders(out: string[], headers: IncomingHttpHeaders, f: ForwardedFacts): void {
  const priorXff = f.trustedPeer ? headers['x-forwarded-for'] : undefined;
  out.push(
    'x-forwarded-for',
    typeof priorXff === 'string' && priorXff !== '' ? `${priorXff}, ${f.peer}` : f.peer,
  );
  const priorProto = f.trustedPeer ? headers['x-forwarded-proto'] : undefined;
  out.push(
    'x-forwarded-proto',
    typeof priorProto === 'string' && priorProto !== '' ? priorProto : f.protocol,
  );
  const priorHost = f.trustedPeer ? headers['x-forwarded-host'] : undefined;
  const host = typeof priorHost === 'string' && priorHost !== '' ? priorHost : f.host;
  if (host !== undefined) out.push('x-forwarded-host', host);
  let element = `for=${f.forNode ?? forwardedFor(f.peer)};proto=${f.protocol}`;
  if (f.host !== undefined) element += `;host=${quoteIfNeeded(f.host)}`;
  const priorForwarded = f.trustedPeer ? headers.forwarded : undefined;
  out.push(
    'forwarded',
    typeof priorForwarded === 'string' && priorForwarded !== '' ? `${priorForwarded}, ${element}` : element,
  );
}
