import type { IncomingHttpHeaders } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { exchange } from '../http/exchange/index.js';
import { upstreamRequestHeaders } from '../http/forward.js';
import type { ResponseFilter } from '../http/response.js';
import type { RequestContext } from '../http/types.js';
import type { ServicePool } from '../http/upstream/types.js';
import { type Answer, bodyOf } from './diff.js';

/**
 * One shadowed request: the primary answer streams to the client untouched (the `forward`
 * exchange, with a response filter that copies its status, headers and first
 * `maxResponseSize` bytes aside), while a copy goes to the other side through the buffered
 * exchange, with its own deadline, one attempt and a slot of the route's ShadowQueue. The
 * request body is teed: the primary reads the client's stream at its own pace and the copy
 * gets the same chunks, kept up to `maxBodySize` (a larger body drops the copy, never the
 * primary). Nothing here can delay or fail the primary: the copy's failures only end up in the
 * comparison's outcome.
 */

/** The other side's answer, or why there is none. */
export type CopyOutcome =
  | { ok: true; answer: Answer; ms: number }
  | { ok: false; failure: string; status?: number; ms: number };

export interface ShadowLimits {
  timeoutMs: number;
  maxBodySize: number;
  maxResponseSize: number;
}

/** Headers kept from each answer for the comparison and the report. */
const KEPT_HEADERS = ['content-type', 'content-encoding', 'cache-control', 'location', 'etag'];

/** Tees a request body: chunks up to `max` are kept for copies; resolves undefined past it or on abort. */
export function teeRequestBody(ctx: RequestContext, max: number): Promise<Buffer | undefined> {
  const req = ctx.req;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    // Paused first, so adding a 'data' listener does not start the flow before the primary's
    // exchange listens too: undici resumes the stream when it starts sending, and from then on
    // every chunk reaches both listeners, at the primary's pace (its backpressure pauses both).
    req.pause();
    const onData = (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
        req.off('data', onData);
        resolve(undefined);
      } else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.once('close', () => {
      if (!req.readableEnded) resolve(undefined);
    });
  });
}

/** A response filter that copies the primary answer aside while it goes out unchanged. */
export function captureAnswer(maxSize: number): {
  filter: ResponseFilter;
  answer: Promise<Answer | undefined>;
  /** The response closed: resolves `answer` with undefined unless it already ended. */
  abandon: () => void;
} {
  let status = 0;
  let headers: Record<string, string | undefined> = {};
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  let settle!: (a: Answer | undefined) => void;
  const answer = new Promise<Answer | undefined>((r) => {
    settle = r;
  });
  const filter: ResponseFilter = {
    head(head) {
      status = head.statusCode;
      headers = {};
      for (const h of KEPT_HEADERS) {
        const v = head.getHeader(h);
        if (v !== undefined) headers[h] = Array.isArray(v) ? v.join(', ') : String(v);
      }
      return undefined;
    },
    write(chunk, out) {
      if (!over) {
        size += chunk.length;
        if (size > maxSize) {
          over = true;
          chunks.length = 0;
        } else chunks.push(chunk);
      }
      return out.write(chunk);
    },
    end(out) {
      out.end();
      settle(over ? { status, headers, body: TOO_LARGE } : answerOf(status, headers, Buffer.concat(chunks)));
    },
  };
  return { filter, answer, abandon: () => settle(undefined) };
}

/** Stands for a body too large to compare: equal on both sides, so only status and headers count. */
const TOO_LARGE = '(body larger than shadow.maxResponseSize: not compared)';

/**
 * The copy's request line and headers, taken while the request is live (its socket, for the
 * forwarding headers, is gone once the primary has answered): marked `x-trellis-shadow: 1`, no
 * host (undici sends the chosen upstream's own).
 */
export function copyRequest(ctx: RequestContext, pool: ServicePool, target: string): CopyRequest {
  const headers = upstreamRequestHeaders(ctx, undefined);
  headers.push('x-trellis-shadow', '1');
  return {
    method: ctx.req.method ?? 'GET',
    path: target,
    headers,
    hashKey: pool.hashKey?.(ctx.req.headers, ctx.clientIp),
  };
}

export interface CopyRequest {
  method: string;
  path: string;
  headers: string[];
  hashKey: string | undefined;
}

/** Sends the copy of a request to `pool`: one attempt, its own deadline. */
export async function sendCopy(
  pool: ServicePool,
  request: CopyRequest,
  body: Buffer | undefined,
  limits: ShadowLimits,
): Promise<CopyOutcome> {
  const started = performance.now();
  const result = await exchange(pool, {
    method: request.method,
    path: request.path,
    headers: request.headers,
    body,
    maxBodySize: limits.maxResponseSize,
    retry: false,
    signal: AbortSignal.timeout(limits.timeoutMs),
    isDeadline: () => true,
    hashKey: request.hashKey,
  });
  const ms = performance.now() - started;
  if (!result.ok) {
    if (result.failure === 'tooLarge' && result.status !== undefined)
      return { ok: true, answer: { status: result.status, headers: {}, body: TOO_LARGE }, ms };
    return { ok: false, failure: result.failure, ms };
  }
  return { ok: true, answer: answerOf(result.status, keptHeaders(result.headers), result.body), ms };
}

function keptHeaders(h: IncomingHttpHeaders): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of KEPT_HEADERS) {
    const v = h[name];
    if (v !== undefined) out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** An answer as the comparison sees it: decoded when compressed, parsed when JSON. */
function answerOf(status: number, headers: Record<string, string | undefined>, raw: Buffer): Answer {
  let bytes = raw;
  const encoding = headers['content-encoding'];
  try {
    // Decoded for the comparison only (bounded: the input is at most maxResponseSize); two sides
    // compressing the same JSON differently are not a difference.
    const limit = { maxOutputLength: 16 * 1024 * 1024 };
    if (encoding === 'gzip') bytes = gunzipSync(raw, limit);
    else if (encoding === 'br') bytes = brotliDecompressSync(raw, limit);
    else if (encoding === 'deflate') bytes = inflateSync(raw, limit);
  } catch {
    bytes = raw;
  }
  const { 'content-encoding': _, ...compared } = headers;
  return { status, headers: compared, body: bodyOf(bytes.toString('utf8'), headers['content-type']) };
}
