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
  // Raw arrays may repeat a name (set-cookie): gather repeats before setting.
  const pairs: Array<[string, string]> = [];
  if (Array.isArray(headers[0])) for (const p of headers as string[][]) pairs.push([p[0]!, p[1]!]);
  else
    for (let i = 0; i < headers.length; i += 2) pairs.push([headers[i] as string, headers[i + 1] as string]);
  const grouped = new Map<string, string[]>();
  for (const [k, v] of pairs) {
    const key = k.toLowerCase();
    const list = grouped.get(key);
    if (list) list.push(v);
    else grouped.set(key, [v]);
  }
  for (const [k, v] of grouped) res.setHeader(k, v.length === 1 ? v[0]! : v);
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
