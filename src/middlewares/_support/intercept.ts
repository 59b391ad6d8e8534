import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

type HeadArg = OutgoingHttpHeaders | ReadonlyArray<string | readonly string[]> | undefined;
type HeaderValue = number | string | readonly string[];

/**
 * The response head as an `onResponseHead` callback sees it: the header methods of
 * ServerResponse (which satisfies it) and the status code.
 */
export interface ResponseHead {
  statusCode: number;
  getHeader(name: string): number | string | string[] | undefined;
  setHeader(name: string, value: HeaderValue): unknown;
  removeHeader(name: string): void;
  hasHeader(name: string): boolean;
  /** Lower-cased names. */
  getHeaderNames(): string[];
}

/** Whether raw header name `raw` is `lower` (already lower case), without lower-casing most names. */
function sameName(raw: string, lower: string): boolean {
  return raw.length === lower.length && raw.toLowerCase() === lower;
}

/**
 * A head held as a flat `[name, value, …]` list, handed to node's writeHead as it is. The proxy
 * writes its head that way; going through `setHeader` for every upstream header instead (name
 * and value validation, then node's slower serialisation of stored headers) cost more than the
 * whole `cors` middleware. A response has a handful of headers, so linear scans are cheapest.
 */
class FlatHead implements ResponseHead {
  constructor(
    public statusCode: number,
    readonly list: string[],
  ) {}

  getHeader(name: string): string | string[] | undefined {
    const lower = name.toLowerCase();
    let found: string[] | undefined;
    for (let i = 0; i < this.list.length; i += 2) {
      if (!sameName(this.list[i]!, lower)) continue;
      found ??= [];
      found.push(this.list[i + 1]!);
    }
    return found === undefined ? undefined : found.length === 1 ? found[0] : found;
  }

  hasHeader(name: string): boolean {
    const lower = name.toLowerCase();
    for (let i = 0; i < this.list.length; i += 2) if (sameName(this.list[i]!, lower)) return true;
    return false;
  }

  setHeader(name: string, value: HeaderValue): this {
    this.removeHeader(name);
    if (typeof value === 'object') for (const v of value) this.list.push(name, v);
    else this.list.push(name, String(value));
    return this;
  }

  removeHeader(name: string): void {
    const lower = name.toLowerCase();
    for (let i = this.list.length - 2; i >= 0; i -= 2)
      if (sameName(this.list[i]!, lower)) this.list.splice(i, 2);
  }

  getHeaderNames(): string[] {
    const names: string[] = [];
    for (let i = 0; i < this.list.length; i += 2) {
      const lower = this.list[i]!.toLowerCase();
      if (!names.includes(lower)) names.push(lower);
    }
    return names;
  }
}

/** Copies a `writeHead` headers argument (object, flat or nested array) onto the response. */
function applyHeadArg(res: ServerResponse, headers: HeadArg): void {
  if (headers === undefined) return;
  if (!Array.isArray(headers)) {
    for (const [k, v] of Object.entries(headers as OutgoingHttpHeaders))
      if (v !== undefined) res.setHeader(k, v);
    return;
  }
  // Raw arrays may repeat a name (set-cookie): a repeat is appended to what this call already
  // set, never replacing it (node's own writeHead would keep only the last).
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

// node keeps setHeader's headers under this symbol. writeHead(status, array) takes its fast path
// (and keeps repeated names) only when it is empty (null); once setHeader was called, even
// removing every header leaves an empty object, and node then merges the array pair by pair,
// keeping only the last of repeated names (set-cookie). Found by description, not hard-wired:
// if a node version renames it, heads with earlier setHeader calls take the setHeader path.
let outHeaders: symbol | null | undefined;

function outHeadersSymbol(res: ServerResponse): symbol | null {
  if (outHeaders === undefined)
    outHeaders = Object.getOwnPropertySymbols(res).find((s) => s.description === 'kOutHeaders') ?? null;
  return outHeaders;
}

/**
 * The head of a flat-array writeHead as one list: headers set earlier with setHeader come first
 * (and leave the response), except names the list itself has, which it replaces, as writeHead
 * always did here. Undefined when earlier headers cannot be taken off the response.
 */
function flatHead(res: ServerResponse, status: number, headers: readonly string[]): FlatHead | undefined {
  const head = new FlatHead(status, []);
  const preset = res.getHeaderNames();
  if (preset.length > 0) {
    const symbol = outHeadersSymbol(res);
    if (symbol === null) return undefined;
    for (const name of preset) {
      let listed = false;
      for (let i = 0; i < headers.length && !listed; i += 2) listed = sameName(headers[i]!, name);
      if (listed) continue;
      const value = res.getHeader(name)!;
      head.setHeader(name, typeof value === 'object' ? value : String(value));
    }
    (res as unknown as Record<symbol, unknown>)[symbol] = null;
  }
  for (let i = 0; i < headers.length; i++) head.list.push(headers[i]!);
  return head;
}

/**
 * Headers a handler has settled for this response, which no response-head edit may change: an
 * incomplete aggregate's `cache-control: no-store` must survive a headers middleware that sets
 * `cache-control: private, max-age=30` for the route. `undefined` means "must be absent".
 */
const sealed = new WeakMap<ServerResponse, ReadonlyMap<string, string | undefined>>();

/** Fixes response headers (lower-case names) against every later `onResponseHead` edit. */
export function sealResponseHeaders(res: ServerResponse, headers: Record<string, string | undefined>): void {
  sealed.set(res, new Map(Object.entries(headers)));
}

function applySealed(res: ServerResponse, head: ResponseHead): void {
  const fixed = sealed.get(res);
  if (fixed === undefined) return;
  for (const [name, value] of fixed) {
    if (value === undefined) head.removeHeader(name);
    else head.setHeader(name, value);
  }
}

/**
 * Runs `onHead` once, just before the response head goes out, with every header the handler
 * chose already visible (however it wrote them: setHeader, writeHead with an object or a raw
 * array, or an implicit head from the first write). The callback may change status and headers.
 * Why by hand: the proxy writes straight to `res`, and node has no "before head" hook.
 */
export function onResponseHead(res: ServerResponse, onHead: (head: ResponseHead) => void): void {
  const original = res.writeHead as (this: ServerResponse, ...args: unknown[]) => ServerResponse;
  let done = false;
  res.writeHead = function writeHead(this: ServerResponse, status: number, a?: unknown, b?: unknown) {
    if (done) return original.call(this, status, a, b);
    done = true;
    const message = typeof a === 'string' ? a : undefined;
    const headers = (message === undefined ? a : b) as HeadArg;
    if (message !== undefined) res.statusMessage = message;
    // The proxy's case: a flat array of strings stays a flat array.
    const head =
      Array.isArray(headers) && (headers.length === 0 || typeof headers[0] === 'string')
        ? flatHead(res, status, headers as readonly string[])
        : undefined;
    if (head !== undefined) {
      onHead(head);
      applySealed(res, head);
      res.statusCode = head.statusCode;
      return message === undefined
        ? original.call(this, head.statusCode, head.list)
        : original.call(this, head.statusCode, message, head.list);
    }
    res.statusCode = status;
    applyHeadArg(res, headers);
    onHead(res);
    applySealed(res, res);
    return original.call(this, res.statusCode, res.statusMessage);
  } as ServerResponse['writeHead'];
}
