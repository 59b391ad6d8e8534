import type { IncomingHttpHeaders } from 'node:http';
import type { HashOn } from './schema.js';

/** The key consistent hashing hashes for one request, or undefined when it has none. */
export function hashKeyOf(
  hashOn: HashOn,
  headers: IncomingHttpHeaders,
  clientIp: string,
): string | undefined {
  if (hashOn === 'clientIp') return clientIp;
  if ('header' in hashOn) {
    const value = headers[hashOn.header.toLowerCase()];
    return Array.isArray(value) ? value[0] : value;
  }
  return cookieValue(headers.cookie, hashOn.cookie);
}

/** One cookie's value from a Cookie header (RFC 6265 §5.4: `a=1; b=2`), undefined when absent. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  let from = 0;
  while (from < header.length) {
    let end = header.indexOf(';', from);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', from);
    if (eq > 0 && eq < end && header.slice(from, eq).trim() === name) {
      const value = header.slice(eq + 1, end).trim();
      return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
    }
    from = end + 1;
  }
  return undefined;
}
