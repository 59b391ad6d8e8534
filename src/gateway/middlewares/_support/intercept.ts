import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

type HeadArg = OutgoingHttpHeaders | ReadonlyArray<string | readonly string[]> | undefined;

/** Copies a `writeHead` headers argument (object, flat or nested array) onto the response. */
function applyHeadArg(res: ServerResponse, headers: HeadArg): void {
  if (headers === undefined) return;
  if (!Array.isArray(headers)) {
    for (const [k, v] of Object.entries(headers as OutgoingHttpHeaders))
      if (v !== undefined) res.setHeader(k, v);
    return;
  }
  // Raw arrays may repeat a name (set-cookie): a repeat is appended to what this call already
  // set, never replacing it (node's own writeHead would keep only the last). Names seen are
  // kept in a short array: a response has a handful of headers, and this runs on every one.
  const nested = Array.isArray(headers[0]);
  const step = nested ? 1 : 2;
  const seen: string[] = [];
  for (let i = 0; i < headers.length; i += step) {
    const name = (nested ? (headers[i] as readonly string[])[0] : headers[i]) as string;
    const value = (nested ? (headers[i] as readonly string[])[1] : headers[i + 1]) as string;
    const key = name.toLowerCase();
    if (!seen.includes(key)) {
      seen.push(key);
      res.setHeader(key, value);
      continue;
    }
    const prior = res.getHeader(key)!;
    res.setHeader(key, Array.isArray(prior) ? [...prior, value] : [String(prior), value]);
  }
}

/**
 * Runs `onHead` once, just before the response head goes out, with every header the handler
 * chose already on `res` (however it wrote them: setHeader, writeHead with an object or a raw
 * array, or an implicit head from the first write). The callback may change status and headers.
 * Why by hand: the proxy writes straight to `res`, and node has no "before head" hook.
 */
export function onResponseHead(res: ServerResponse, onHead: (res: ServerResponse) => void): void {
  const original = res.writeHead as (this: ServerResponse, ...args: unknown[]) => ServerResponse;
  let done = false;
  res.writeHead = function writeHead(this: ServerResponse, status: number, a?: unknown, b?: unknown) {
    if (done) return original.call(this, status, a, b);
    done = true;
    res.statusCode = status;
    if (typeof a === 'string') {
      res.statusMessage = a;
      applyHeadArg(res, b as HeadArg);
    } else applyHeadArg(res, a as HeadArg);
    onHead(res);
    return original.call(this, res.statusCode, res.statusMessage);
  } as ServerResponse['writeHead'];
}
