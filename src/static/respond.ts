import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { sendProblem } from '../http/problem.js';
import type { RequestContext } from '../http/types.js';
import type { BodyCache } from './body-cache.js';
import { ifRangeHolds, noneMatchHits, notModifiedSince } from './conditional.js';
import { etagOf } from './etag.js';
import { pickVariant } from './negotiate.js';
import { type ByteRange, parseRange } from './range.js';
import type { ContentSource, StaticEntry, Variant } from './types.js';

/**
 * Writes the answer for one file: 200, 206 (one or several ranges), 304 or 416, with strong
 * ETags, Last-Modified, Cache-Control, and Vary on every answer of a negotiable file. The HTTP
 * here is done by hand because `send`/`serve-static` tie it to their own file reading (no
 * object-store source, no content-hash ETags, no per-encoding validators, no range cap).
 */

/** What the handler settles once per route. */
export interface Responder {
  source: ContentSource;
  bodies: BodyCache;
  maxRanges: number;
  /** Cache-Control for a path (the entry's own value from a release wins). */
  cacheControl(rel: string): string;
}

interface Prepared {
  etag: string;
  lastModified: string;
  /** 200 headers without the request id. */
  full: Record<string, string | number>;
  /** 304 headers. */
  notModified: Record<string, string>;
  /** Shared by 206 and 416. */
  base: Record<string, string>;
}

// Headers depend only on the entry and the encoding: built once per file version.
const prepared = new WeakMap<StaticEntry, Map<string, Prepared>>();
const BOUNDARY = `trellis-${randomBytes(12).toString('hex')}`;

function prepare(entry: StaticEntry, variant: Variant | undefined, r: Responder): Prepared {
  let byEncoding = prepared.get(entry);
  if (byEncoding === undefined) {
    byEncoding = new Map();
    prepared.set(entry, byEncoding);
  }
  const key = variant?.encoding ?? 'identity';
  let p = byEncoding.get(key);
  if (p !== undefined) return p;
  const etag = etagOf(entry.hash, variant?.encoding);
  const lastModified = new Date(entry.mtimeMs).toUTCString();
  const cacheControl = entry.cacheControl ?? r.cacheControl(entry.rel);
  const notModified: Record<string, string> = {
    etag,
    'last-modified': lastModified,
    'cache-control': cacheControl,
  };
  if (entry.negotiable) notModified.vary = 'Accept-Encoding';
  // nosniff: a browser must not run an uploaded .txt as script because its bytes look like one.
  const base: Record<string, string> = {
    ...notModified,
    'accept-ranges': 'bytes',
    'x-content-type-options': 'nosniff',
  };
  const full: Record<string, string | number> = {
    ...base,
    'content-type': entry.contentType,
    'content-length': variant?.size ?? entry.size,
  };
  if (variant !== undefined) {
    full['content-encoding'] = variant.encoding;
    base['content-encoding'] = variant.encoding;
  }
  p = { etag, lastModified, full, notModified, base };
  byEncoding.set(key, p);
  return p;
}

/** Answers `ctx` with `entry`. Resolves once the response is written or handed to a stream. */
export async function respondWithEntry(ctx: RequestContext, entry: StaticEntry, r: Responder): Promise<void> {
  const req = ctx.req;
  const res = ctx.res;
  const h = req.headers;
  const variant = pickVariant(entry.variants, h['accept-encoding']);
  const p = prepare(entry, variant, r);
  const inm = h['if-none-match'];
  const ims = h['if-modified-since'];
  if (
    inm !== undefined ? noneMatchHits(inm, p.etag) : ims !== undefined && notModifiedSince(ims, entry.mtimeMs)
  ) {
    res.writeHead(304, { ...p.notModified, 'x-request-id': ctx.requestId });
    res.end();
    return;
  }
  const size = variant?.size ?? entry.size;
  const range = h.range;
  const ifRange = h['if-range'] as string | undefined;
  if (range !== undefined && (ifRange === undefined || ifRangeHolds(ifRange, p.etag, p.lastModified))) {
    const ranges = parseRange(range, size, r.maxRanges);
    if (ranges === 'unsatisfiable' || ranges === 'too-many') {
      const tooMany = ranges === 'too-many';
      ctx.errorCode = tooMany ? 'TRELLIS_E_STATIC_TOO_MANY_RANGES' : 'TRELLIS_E_STATIC_RANGE_NOT_SATISFIABLE';
      sendProblem(ctx, {
        status: 416,
        title: 'Range Not Satisfiable',
        code: ctx.errorCode,
        detail: tooMany
          ? `more than ${r.maxRanges} ranges, or overlapping ranges: ask for fewer, larger ranges`
          : `no range is inside the ${size} bytes of this file`,
        headers: { ...p.base, 'content-range': `bytes */${size}` },
      });
      return;
    }
    if (ranges !== 'ignore') return sendRanges(ctx, entry, variant, p, ranges, size, r);
  }
  const headers = { ...p.full, 'x-request-id': ctx.requestId };
  if (req.method === 'HEAD') {
    res.writeHead(200, headers);
    res.end();
    return;
  }
  const encoding = variant?.encoding ?? 'identity';
  let body = r.bodies.get(entry.hash, encoding);
  if (body === undefined && r.bodies.fits(size)) {
    body = await r.source.read(entry, variant);
    r.bodies.set(entry.hash, encoding, body);
  }
  if (body !== undefined) {
    res.writeHead(200, headers);
    res.end(body);
    ctx.responseBytes = body.length;
    return;
  }
  const stream = await r.source.stream(entry, variant);
  res.writeHead(200, headers);
  pipeWhole(stream, ctx, size);
}

async function sendRanges(
  ctx: RequestContext,
  entry: StaticEntry,
  variant: Variant | undefined,
  p: Prepared,
  ranges: ByteRange[],
  size: number,
  r: Responder,
): Promise<void> {
  const res = ctx.res;
  const head = ctx.req.method === 'HEAD';
  const cached = r.bodies.get(entry.hash, variant?.encoding ?? 'identity');
  if (ranges.length === 1) {
    const { start, end } = ranges[0]!;
    const headers = {
      ...p.base,
      'content-type': entry.contentType,
      'content-range': `bytes ${start}-${end}/${size}`,
      'content-length': end - start + 1,
      'x-request-id': ctx.requestId,
    };
    if (head) {
      res.writeHead(206, headers);
      res.end();
      return;
    }
    if (cached !== undefined) {
      res.writeHead(206, headers);
      res.end(cached.subarray(start, end + 1));
      return;
    }
    const stream = await r.source.stream(entry, variant, { start, end });
    res.writeHead(206, headers);
    pipeWhole(stream, ctx, end - start + 1);
    return;
  }
  // multipart/byteranges (RFC 9110 14.6): each part has its own Content-Type and Content-Range.
  const heads = ranges.map((g) =>
    Buffer.from(
      `--${BOUNDARY}\r\ncontent-type: ${entry.contentType}\r\ncontent-range: bytes ${g.start}-${g.end}/${size}\r\n\r\n`,
    ),
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  const crlf = Buffer.from('\r\n');
  let length = tail.length;
  ranges.forEach((g, i) => {
    length += heads[i]!.length + (g.end - g.start + 1) + (i > 0 ? crlf.length : 0);
  });
  const headers = {
    ...p.base,
    'content-type': `multipart/byteranges; boundary=${BOUNDARY}`,
    'content-length': length,
    'x-request-id': ctx.requestId,
  };
  res.writeHead(206, headers);
  if (head) {
    res.end();
    return;
  }
  for (let i = 0; i < ranges.length; i++) {
    const g = ranges[i]!;
    if (i > 0) res.write(crlf);
    res.write(heads[i]!);
    if (cached !== undefined) res.write(cached.subarray(g.start, g.end + 1));
    else {
      const stream = await r.source.stream(entry, variant, g);
      const ok = await new Promise<boolean>((done) => {
        stream.once('end', () => done(true));
        stream.once('error', () => done(false));
        res.once('close', () => done(false));
        stream.pipe(res, { end: false });
      });
      if (!ok) {
        stream.destroy();
        res.destroy();
        return;
      }
    }
  }
  res.end(tail);
}

/** Streams to the end; a source that fails or comes up short cuts the response (never a silent short body). */
function pipeWhole(stream: Readable, ctx: RequestContext, expected: number): void {
  const res = ctx.res;
  let sent = 0;
  stream.on('data', (chunk: Buffer) => {
    sent += chunk.length;
    if (!res.write(chunk)) {
      stream.pause();
      res.once('drain', () => stream.resume());
    }
  });
  stream.once('end', () => {
    ctx.responseBytes = sent;
    if (sent === expected) res.end();
    else res.destroy();
  });
  stream.once('error', (err) => {
    ctx.log.warn({ err: err.message, path: ctx.path }, 'static: file read failed mid-response');
    res.destroy();
  });
  res.once('close', () => {
    if (!stream.readableEnded) stream.destroy();
  });
}
