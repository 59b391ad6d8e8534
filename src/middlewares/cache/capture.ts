import { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from '../../http/types.js';

type Args = [chunk?: unknown, encoding?: unknown, cb?: unknown];

/** What the cache does with a response head: send it on, or hold it back and answer itself. */
export type HeadDecision = 'pass' | 'swallow';

export interface CaptureHooks {
  /** Called once with the final status and headers on `res`. */
  onHead(res: ServerResponse): HeadDecision;
  onData(chunk: Buffer): void;
  /** Called after the last chunk; in swallow mode `send` writes the cache's own answer. */
  onEnd(send: Sender): void;
}

/** Writes to the client with the original (unwrapped) response methods. */
export interface Sender {
  writeHead(status: number, headers: Record<string, string | string[] | number> | string[]): void;
  end(body?: Buffer): void;
}

function toBuffer(chunk: unknown, encoding: unknown): Buffer | undefined {
  if (chunk === undefined || chunk === null || typeof chunk === 'function') return undefined;
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk);
  return Buffer.from(String(chunk), typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
}

/**
 * Tees (or holds back) what a handler writes to `res`, so the cache can store it, or replace an
 * upstream 304 / 5xx with a stored response. Why by hand: the proxy writes straight to `res`.
 * `keep` names headers set before the handler ran, which a replacement answer keeps.
 */
export function captureResponse(res: ServerResponse, hooks: CaptureHooks, keep: ReadonlySet<string>): void {
  const writeHead = res.writeHead as (this: ServerResponse, ...a: unknown[]) => ServerResponse;
  const write = res.write as (this: ServerResponse, ...a: Args) => boolean;
  const end = res.end as (this: ServerResponse, ...a: Args) => ServerResponse;
  let decision: HeadDecision | undefined;
  const sender: Sender = {
    writeHead: (status, headers) => {
      // Headers set before the handler ran (outer middlewares: rate limits, request id) stay.
      for (const name of res.getHeaderNames()) if (!keep.has(name)) res.removeHeader(name);
      writeHead.call(res, status, headers);
    },
    end: (body) => {
      end.call(res, body);
    },
  };
  res.writeHead = function capturedWriteHead(this: ServerResponse, status: number, a?: unknown, b?: unknown) {
    if (decision !== undefined) return this;
    res.statusCode = status;
    const headers = typeof a === 'string' ? b : a;
    if (typeof a === 'string') res.statusMessage = a;
    if (Array.isArray(headers)) {
      const flat = Array.isArray(headers[0]) ? (headers as string[][]).flat() : (headers as string[]);
      const grouped = new Map<string, string[]>();
      for (let i = 0; i < flat.length; i += 2) {
        const k = flat[i]!.toLowerCase();
        grouped.set(k, [...(grouped.get(k) ?? []), flat[i + 1]!]);
      }
      for (const [k, v] of grouped) res.setHeader(k, v.length === 1 ? v[0]! : v);
    } else if (headers && typeof headers === 'object') {
      for (const [k, v] of Object.entries(headers)) if (v !== undefined) res.setHeader(k, v as string);
    }
    decision = hooks.onHead(res);
    if (decision === 'swallow') return this;
    return writeHead.call(this, res.statusCode, res.statusMessage);
  } as ServerResponse['writeHead'];
  res.write = function capturedWrite(this: ServerResponse, ...args: Args) {
    if (decision === undefined) res.writeHead(res.statusCode);
    const buf = toBuffer(args[0], args[1]);
    if (buf) hooks.onData(buf);
    if (decision === 'swallow') {
      const cb = typeof args[1] === 'function' ? args[1] : args[2];
      if (typeof cb === 'function') process.nextTick(cb as () => void);
      return true;
    }
    return write.apply(this, args);
  } as ServerResponse['write'];
  res.end = function capturedEnd(this: ServerResponse, ...args: Args) {
    let [chunk, encoding, cb] = args;
    if (typeof chunk === 'function') [chunk, encoding, cb] = [undefined, undefined, chunk];
    else if (typeof encoding === 'function') [encoding, cb] = [undefined, encoding];
    const buf = toBuffer(chunk, encoding);
    if (decision === undefined) {
      if (buf && !res.hasHeader('content-length')) res.setHeader('content-length', buf.length);
      res.writeHead(res.statusCode);
    }
    if (buf) hooks.onData(buf);
    res.writeHead = writeHead as ServerResponse['writeHead'];
    res.write = write as ServerResponse['write'];
    res.end = end as ServerResponse['end'];
    if (decision === 'swallow') {
      hooks.onEnd(sender);
      if (typeof cb === 'function') process.nextTick(cb as () => void);
      return this;
    }
    const out = end.call(this, chunk, encoding, cb);
    hooks.onEnd(sender);
    return out;
  } as ServerResponse['end'];
}

/**
 * A request/response pair with no client behind it, for a background revalidation
 * (stale-while-revalidate): the handler runs as for a client, and the cache captures the answer.
 */
export function backgroundContext(ctx: RequestContext, headers: Record<string, string>): RequestContext {
  const req = new IncomingMessage(ctx.req.socket);
  req.method = 'GET';
  req.url = ctx.req.url ?? '/';
  req.httpVersion = '1.1';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  const all: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.req.headers)) {
    if (v !== undefined && k !== 'if-none-match' && k !== 'if-modified-since')
      all[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  Object.assign(all, headers);
  req.headers = all;
  req.rawHeaders = Object.entries(all).flat();
  req.complete = true;
  req.push(null);
  const res = new ServerResponse(req);
  const copy = Object.assign(Object.create(Object.getPrototypeOf(ctx)) as RequestContext, ctx, {
    req,
    res,
    state: { ...ctx.state },
  });
  return copy;
}
