import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** Removes every copy of a request header (both `headers` and `rawHeaders`). */
function strip(req: IncomingMessage, lower: string): void {
  if (!(lower in req.headers)) return;
  delete req.headers[lower];
  const raw = req.rawHeaders;
  for (let i = raw.length - 2; i >= 0; i -= 2) if (raw[i]!.toLowerCase() === lower) raw.splice(i, 2);
}

/** Quotes a value for the header, escaping what would end the quoted string. */
function quote(s: string): string {
  // Control and non-ASCII characters (a UTF-8 CN) are percent-encoded: a header line stays valid.
  const safe = s.replace(/[^\t\x20-\x7e]+/g, (m) => encodeURIComponent(m));
  return `"${safe.replace(/[\\"]/g, '\\$&')}"`;
}

/**
 * Puts the verified client certificate's identity in `header`, Envoy XFCC style:
 * `Hash=<sha256>;Subject="CN=…";DNS=…;URI=…`. Any copy the client sent is removed first, so the
 * header upstream can only come from a certificate this listener verified.
 */
export function setClientIdentity(req: IncomingMessage, header: string): void {
  const lower = header.toLowerCase();
  strip(req, lower);
  const socket = req.socket as TLSSocket;
  if (!socket.authorized) return;
  const cert = socket.getPeerCertificate();
  if (!cert?.fingerprint256) return;
  const parts = [`Hash=${cert.fingerprint256.replace(/:/g, '').toLowerCase()}`];
  const subject = Object.entries(cert.subject ?? {})
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(',');
  if (subject) parts.push(`Subject=${quote(subject)}`);
  for (const san of (cert.subjectaltname ?? '').split(',').map((s) => s.trim())) {
    if (san.startsWith('DNS:')) parts.push(`DNS=${quote(san.slice(4))}`);
    else if (san.startsWith('URI:')) parts.push(`URI=${quote(san.slice(4))}`);
  }
  const value = parts.join(';');
  req.headers[lower] = value;
  req.rawHeaders.push(lower, value);
}
