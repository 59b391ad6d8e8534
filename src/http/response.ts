import {
  type IncomingMessage,
  type OutgoingHttpHeader,
  type OutgoingHttpHeaders,
  ServerResponse,
  validateHeaderName,
  validateHeaderValue,
} from 'node:http';

/**
 * The response phase of the data plane. Every listener of a runtime creates its responses with
 * `TrellisResponse` (node's documented `ServerResponse` server option), so a handler keeps writing
 * to `res` as to any node response, while middlewares see and rewrite what it writes through
 * `ResponseFilter`s registered with `ctx.onResponse(filter)`: the head (status, headers) just
 * before it goes out, then each body chunk and the end. Nobody patches `res`, nothing reads node's
 * private fields.
 *
 * Filters run from the innermost (registered last, closest to the handler) to the outermost, as
 * the answer travels back through the middleware chain. Each filter gets a `ResponseSink`: the
 * next stage outward, through which it passes on (or replaces) what it was given.
 *
 * Headers set before the head with `setHeader` are kept here, not in node: when the head goes out
 * they and the handler's own head (an object or the proxy's flat `[name, value, …]` list) become
 * one flat list handed to node's writeHead as it is. That is node's fast path (no per-header
 * object walk), and a flat list keeps repeated names (every `Set-Cookie`), which node's own merge
 * of a flat list into earlier setHeader headers would not.
 */

/** A header value as handlers set it. */
export type HeaderValue = number | string | readonly string[];

/** The head of a response as a filter sees it; edits apply to what the client gets. */
export interface ResponseHead {
  statusCode: number;
  /** The value (an array when the name is repeated, e.g. `set-cookie`), or undefined. */
  getHeader(name: string): string | string[] | undefined;
  /** Replaces every value of `name`. */
  setHeader(name: string, value: HeaderValue): void;
  /** Adds a value after the existing ones (a repeated header line). */
  appendHeader(name: string, value: string): void;
  removeHeader(name: string): void;
  hasHeader(name: string): boolean;
  /** Lower-cased names, each once. */
  getHeaderNames(): string[];
  /** Every header as `{ lower-cased name: value }` (arrays for repeated names). */
  getHeaders(): Record<string, string | string[]>;
}

/** The next stage outward: the next filter, or the client. */
export interface ResponseSink {
  /** Sends a head outward (a filter that held the handler's head answers with its own this way). */
  writeHead(status: number, headers?: OutgoingHttpHeaders | readonly string[]): void;
  /** Passes a body chunk outward; false: wait for the response's 'drain' before writing more. */
  write(chunk: Buffer | string, encoding?: BufferEncoding): boolean;
  /** Ends the body (after an optional last chunk). */
  end(chunk?: Buffer | string, encoding?: BufferEncoding): void;
}

/**
 * What a middleware does to the response it wraps. Every part is optional: a filter that only
 * edits headers has only `head`, and its body goes out untouched at no cost.
 */
export interface ResponseFilter {
  /**
   * The head on its way out, once: edit status and headers in place. Return `'hold'` to keep it
   * (and what follows) from going further: the filter then answers through `out.writeHead` /
   * `out.write` / `out.end` itself (a cache answering a stale entry instead of an upstream 5xx).
   */
  head?(head: ResponseHead, out: ResponseSink): undefined | 'hold';
  /** A body chunk; pass it (or a transformed one) on with `out.write`. Returns backpressure. */
  write?(chunk: Buffer, out: ResponseSink): boolean;
  /** The end of the body: flush what is held, then `out.end()`. */
  end?(out: ResponseSink): void;
}

/** Whether raw header name `raw` is `lower` (already lower case), without lower-casing most names. */
function sameName(raw: string, lower: string): boolean {
  return raw.length === lower.length && (raw === lower || raw.toLowerCase() === lower);
}

/** A head held as a flat `[name, value, …]` list; a response has a handful, so scans are cheapest. */
export class FlatHead implements ResponseHead {
  constructor(
    public statusCode: number,
    readonly list: string[],
  ) {}

  getHeader(name: string): string | string[] | undefined {
    const lower = name.toLowerCase();
    let first: string | undefined;
    let found: string[] | undefined;
    for (let i = 0; i < this.list.length; i += 2) {
      if (!sameName(this.list[i]!, lower)) continue;
      if (first === undefined) first = this.list[i + 1]!;
      else {
        found ??= [first];
        found.push(this.list[i + 1]!);
      }
    }
    return found ?? first;
  }

  hasHeader(name: string): boolean {
    const lower = name.toLowerCase();
    for (let i = 0; i < this.list.length; i += 2) if (sameName(this.list[i]!, lower)) return true;
    return false;
  }

  setHeader(name: string, value: HeaderValue): void {
    this.removeHeader(name);
    if (typeof value === 'object') for (const v of value) this.list.push(name, v);
    else this.list.push(name, String(value));
  }

  appendHeader(name: string, value: string): void {
    this.list.push(name, value);
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

  getHeaders(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    for (const name of this.getHeaderNames()) out[name] = this.getHeader(name)!;
    return out;
  }
}

type Callback = (err?: Error | null) => void;
type HeadArg = OutgoingHttpHeaders | readonly OutgoingHttpHeader[] | undefined;

function toBuffer(chunk: unknown, encoding: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk), typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
}

/** Appends a headers argument (object, flat or nested array) to a flat list. */
function pushHeadArg(list: string[], headers: HeadArg): void {
  if (headers === undefined || headers === null) return;
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const pair of headers as unknown as readonly (readonly string[])[])
        list.push(String(pair[0]), String(pair[1]));
    } else for (let i = 0; i < headers.length; i++) list.push(String(headers[i]));
    return;
  }
  for (const k in headers as OutgoingHttpHeaders) {
    const v = (headers as OutgoingHttpHeaders)[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) list.push(k, String(x));
    else list.push(k, String(v));
  }
}

/** Whether flat list `list` names `lower`. */
function listHas(list: readonly string[], lower: string): boolean {
  for (let i = 0; i < list.length; i += 2) if (sameName(list[i]!, lower)) return true;
  return false;
}

/**
 * Headers set before the head, in order, as three parallel lists: a response has a handful, so a
 * scan beats a Map (no entry arrays, no hashing) on the path every proxied request takes.
 */
class PresetHeaders {
  readonly lower: string[] = [];
  readonly names: string[] = [];
  readonly values: HeaderValue[] = [];

  indexOf(lower: string): number {
    return this.lower.indexOf(lower);
  }

  set(name: string, value: HeaderValue): void {
    const lower = name.toLowerCase();
    const at = this.lower.indexOf(lower);
    if (at === -1) {
      this.lower.push(lower);
      this.names.push(name);
      this.values.push(value);
    } else {
      this.names[at] = name;
      this.values[at] = value;
    }
  }

  delete(lower: string): void {
    const at = this.lower.indexOf(lower);
    if (at === -1) return;
    this.lower.splice(at, 1);
    this.names.splice(at, 1);
    this.values.splice(at, 1);
  }
}

/**
 * The ServerResponse of every runtime listener (see the module comment). Without filters and
 * without early `setHeader` calls it adds one branch per call to node's own response.
 */
export class TrellisResponse<Req extends IncomingMessage = IncomingMessage> extends ServerResponse<Req> {
  /** Headers set before the head: lower-cased name -> [name as written, value]. */
  private preset: PresetHeaders | undefined;
  /** Filters in the order registered (outermost first). */
  private filters: ResponseFilter[] | undefined;
  /** The handler's head went into the filter chain (it may have been held there). */
  private headStarted = false;
  /** Some filter sees the body: chunks then go through the chain (else straight to node). */
  private bodyFiltered = false;
  /** The sink outward of each filter, made once (body chunks reuse it). */
  private sinks: ResponseSink[] | undefined;
  /** Headers the handler settled (see `sealHeaders`): applied last, over every filter's edits. */
  private sealed: ReadonlyMap<string, string | undefined> | undefined;

  /** Registers a response filter (see ResponseFilter); runs inside the ones registered before. */
  addFilter(filter: ResponseFilter): void {
    if (this.headStarted) throw new Error('a response filter must be added before the response starts');
    this.filters ??= [];
    this.filters.push(filter);
    if (filter.write !== undefined || filter.end !== undefined) this.bodyFiltered = true;
  }

  /**
   * Fixes headers (lower-case names) against every response filter's edits: an incomplete
   * aggregate's `cache-control: no-store` must survive a route's headers middleware setting
   * `cache-control: private, max-age=30`. `undefined` means "must be absent". Every filter sees
   * them on the head, and they are put back after each one ran, so none can change them.
   */
  sealHeaders(headers: Record<string, string | undefined>): void {
    this.sealed = new Map(Object.entries(headers));
  }

  /** Whether any filter is registered (a body then passes through them). */
  get filtered(): boolean {
    return this.filters !== undefined;
  }

  // --- headers set before the head ---------------------------------------------------------

  override setHeader(name: string, value: HeaderValue): this {
    if (this.headersSent) return super.setHeader(name, value as string);
    validateHeaderName(name);
    validateHeaderValue(name, value as string);
    this.preset ??= new PresetHeaders();
    this.preset.set(name, value);
    return this;
  }

  override appendHeader(name: string, value: string | readonly string[]): this {
    if (this.headersSent) return super.appendHeader(name, value);
    const lower = name.toLowerCase();
    const at = this.preset?.indexOf(lower) ?? -1;
    if (at === -1) return this.setHeader(name, value);
    const prior = this.preset!.values[at]!;
    const before = typeof prior === 'object' ? prior : [String(prior)];
    return this.setHeader(this.preset!.names[at]!, [
      ...before,
      ...(typeof value === 'string' ? [value] : value),
    ]);
  }

  override setHeaders(headers: Headers | Map<string, number | string | readonly string[]>): this {
    for (const [k, v] of headers) this.setHeader(k, v);
    return this;
  }

  override getHeader(name: string): number | string | string[] | undefined {
    const at = this.preset?.indexOf(name.toLowerCase()) ?? -1;
    const v = at === -1 ? undefined : this.preset!.values[at];
    return (typeof v === 'object' ? [...v] : v) as number | string | string[] | undefined;
  }

  override getHeaders(): OutgoingHttpHeaders {
    const out: OutgoingHttpHeaders = Object.create(null);
    const p = this.preset;
    if (p)
      for (let i = 0; i < p.lower.length; i++) {
        const v = p.values[i]!;
        out[p.lower[i]!] = typeof v === 'object' ? [...v] : v;
      }
    return out;
  }

  override getHeaderNames(): string[] {
    return this.preset === undefined ? [] : [...this.preset.lower];
  }

  /** Names as written (node's getRawHeaderNames, absent from these types). */
  getRawHeaderNames(): string[] {
    return this.preset === undefined ? [] : [...this.preset.names];
  }

  override hasHeader(name: string): boolean {
    return (this.preset?.indexOf(name.toLowerCase()) ?? -1) !== -1;
  }

  override removeHeader(name: string): void {
    if (this.headersSent) {
      super.removeHeader(name);
      return;
    }
    this.preset?.delete(name.toLowerCase());
  }

  // --- the head -----------------------------------------------------------------------------

  override writeHead(statusCode: number, reason?: string | HeadArg, headers?: HeadArg): this {
    const message = typeof reason === 'string' ? reason : undefined;
    const arg = (message === undefined ? reason : headers) as HeadArg;
    if (this.headStarted) {
      // A second head after a filter held the first: the holder answers, this one is dropped.
      if (!this.headersSent) return this;
      return super.writeHead(statusCode, message as string, arg as OutgoingHttpHeaders);
    }
    this.headStarted = true;
    if (message !== undefined) this.statusMessage = message;
    if (this.preset === undefined && this.filters === undefined && this.sealed === undefined) {
      // The common case: nothing set earlier, nothing to filter.
      return message === undefined
        ? super.writeHead(statusCode, arg as OutgoingHttpHeaders)
        : super.writeHead(statusCode, message, arg as OutgoingHttpHeaders);
    }
    const list = this.headList(arg);
    if (this.filters === undefined) return this.sendHead(statusCode, list);
    this.headAt(this.filters.length - 1, statusCode, list);
    return this;
  }

  /** Earlier setHeader headers (unless the head names them too, which replaces them), then the head. */
  private headList(arg: HeadArg): string[] {
    let own: readonly string[];
    // The proxy's flat list of strings is read as it is; other forms are flattened once.
    if (Array.isArray(arg) && (arg.length === 0 || typeof arg[0] === 'string'))
      own = arg as readonly string[];
    else {
      const flat: string[] = [];
      pushHeadArg(flat, arg);
      if (this.preset === undefined) return flat;
      own = flat;
    }
    // Filters edit the list in place: never the caller's own array.
    if (this.preset === undefined) return own.slice();
    const list: string[] = [];
    const p = this.preset;
    for (let i = 0; i < p.lower.length; i++) {
      if (own.length > 0 && listHas(own, p.lower[i]!)) continue;
      const name = p.names[i]!;
      const value = p.values[i]!;
      if (typeof value === 'object') for (const v of value) list.push(name, v);
      else list.push(name, String(value));
    }
    for (let i = 0; i < own.length; i++) list.push(own[i]!);
    return list;
  }

  /** Puts the sealed headers back over whatever a filter did to `head`. */
  private applySealed(head: ResponseHead): void {
    if (this.sealed === undefined) return;
    for (const [name, value] of this.sealed) {
      if (value === undefined) head.removeHeader(name);
      else head.setHeader(name, value);
    }
  }

  private sendHead(status: number, list: string[]): this {
    if (this.sealed !== undefined) this.applySealed(new FlatHead(status, list));
    this.statusCode = status;
    return super.writeHead(status, this.statusMessage || undefined!, list as unknown as OutgoingHttpHeaders);
  }

  /** Runs the head through filters `index` … 0, then sends it, unless one holds it. */
  private headAt(index: number, status: number, list: string[]): void {
    const head = new FlatHead(status, list);
    // Each filter, a cache deciding what to store among them, sees the sealed values.
    this.applySealed(head);
    for (let i = index; i >= 0; i--) {
      const f = this.filters![i]!;
      if (f.head === undefined) continue;
      if (f.head(head, this.sinkOf(i - 1)) === 'hold') {
        this.statusCode = head.statusCode;
        return;
      }
      this.applySealed(head);
    }
    this.sendHead(head.statusCode, head.list);
  }

  /** The stage outward of filter `index + 1`: filter `index`, or the client when -1. */
  private sinkOf(index: number): ResponseSink {
    this.sinks ??= [];
    const made = this.sinks[index + 1];
    if (made !== undefined) return made;
    const sink: ResponseSink = {
      writeHead: (status, headers) => {
        const list: string[] = [];
        pushHeadArg(list, headers as HeadArg);
        if (index < 0) this.sendHead(status, list);
        else this.headAt(index, status, list);
      },
      write: (chunk, encoding) => this.writeAt(index, chunk, encoding, undefined),
      end: (chunk, encoding) => {
        if (chunk !== undefined && chunk !== null) this.writeAt(index, chunk, encoding, undefined);
        this.endAt(index, undefined);
      },
    };
    this.sinks[index + 1] = sink;
    return sink;
  }

  // --- the body -----------------------------------------------------------------------------

  private writeAt(index: number, chunk: unknown, encoding: unknown, cb: Callback | undefined): boolean {
    for (let i = index; i >= 0; i--) {
      const f = this.filters![i]!;
      if (f.write === undefined) continue;
      if (cb !== undefined) process.nextTick(cb);
      return f.write(toBuffer(chunk, encoding), this.sinkOf(i - 1));
    }
    return super.write(chunk as Buffer, encoding as BufferEncoding, cb as Callback);
  }

  private endAt(index: number, cb: (() => void) | undefined): void {
    for (let i = index; i >= 0; i--) {
      const f = this.filters![i]!;
      if (f.end === undefined) continue;
      if (cb !== undefined) this.once('finish', cb);
      f.end(this.sinkOf(i - 1));
      return;
    }
    super.end(cb);
  }

  /** Whether this answer carries a body (RFC 9110 6.4.1: not HEAD, 1xx, 204, 304). */
  private hasBody(): boolean {
    const s = this.statusCode;
    return this.req?.method !== 'HEAD' && s >= 200 && s !== 204 && s !== 304;
  }

  override write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    if (this.filters === undefined)
      return super.write(chunk as Buffer, encoding as BufferEncoding, cb as Callback);
    if (!this.bodyFiltered) {
      if (!this.headStarted) this.writeHead(this.statusCode);
      return super.write(chunk as Buffer, encoding as BufferEncoding, cb as Callback);
    }
    if (typeof encoding === 'function') [encoding, cb] = [undefined, encoding];
    if (!this.headStarted) this.writeHead(this.statusCode);
    return this.writeAt(this.filters.length - 1, chunk, encoding, cb as Callback | undefined);
  }

  override end(chunk?: unknown, encoding?: unknown, cb?: unknown): this {
    if (this.filters === undefined)
      return super.end(chunk as Buffer, encoding as BufferEncoding, cb as () => void);
    if (typeof chunk === 'function') [chunk, encoding, cb] = [undefined, undefined, chunk];
    else if (typeof encoding === 'function') [encoding, cb] = [undefined, encoding];
    const hasChunk = chunk !== undefined && chunk !== null;
    if (!this.headStarted) {
      // A whole body in one end(): its length is known, so filters see it (compress thresholds),
      // and node, which is handed the head before the body, does not fall back to chunked.
      if (this.hasBody() && !this.hasHeader('content-length') && !this.hasHeader('transfer-encoding'))
        this.setHeader(
          'content-length',
          hasChunk
            ? typeof chunk === 'string'
              ? Buffer.byteLength(chunk, (encoding as BufferEncoding) ?? 'utf8')
              : (chunk as Uint8Array).byteLength
            : 0,
        );
      this.writeHead(this.statusCode);
    }
    // Head-only filters: node writes the last chunk with the end, as without filters.
    if (!this.bodyFiltered) return super.end(chunk as Buffer, encoding as BufferEncoding, cb as () => void);
    const top = this.filters.length - 1;
    if (hasChunk) this.writeAt(top, chunk, encoding, undefined);
    this.endAt(top, cb as (() => void) | undefined);
    return this;
  }
}

/**
 * Fixes response headers against every later response-filter edit (see
 * `TrellisResponse.sealHeaders`). A plain node response has no filters: nothing can edit its head.
 */
export function sealResponseHeaders(res: ServerResponse, headers: Record<string, string | undefined>): void {
  if (res instanceof TrellisResponse) res.sealHeaders(headers);
}
