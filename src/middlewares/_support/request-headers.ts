import type { IncomingMessage } from 'node:http';

/**
 * Sets (or with `undefined`, removes) a request header in both `headers` and `rawHeaders`, so
 * whatever the proxy forwards from carries the change. Used to strip client-sent copies of
 * identity headers (claims, client certificate, API key name) before the gateway sets them.
 */
export function setRequestHeader(req: IncomingMessage, name: string, value: string | undefined): void {
  const lower = name.toLowerCase();
  const raw = req.rawHeaders;
  let had = false;
  for (let i = raw.length - 2; i >= 0; i -= 2) {
    if (raw[i]!.toLowerCase() === lower) {
      raw.splice(i, 2);
      had = true;
    }
  }
  if (value === undefined) {
    if (had || lower in req.headers) delete req.headers[lower];
    return;
  }
  req.headers[lower] = value;
  raw.push(name, value);
}
