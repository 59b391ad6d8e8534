import type { ServerResponse } from 'node:http';
import { type BrotliCompress, constants, createBrotliCompress, createGzip, type Gzip } from 'node:zlib';
import { z } from 'zod';
import { size } from '../../core/units.js';
import { onResponseHead, type ResponseHead } from '../_support/intercept.js';
import { appendVary } from '../_support/vary.js';
import { defineMiddleware } from '../types.js';
import { type Coding, negotiate } from './negotiate.js';

const DEFAULT_TYPES = [
  'text/*',
  'application/json',
  'application/*+json',
  'application/javascript',
  'application/xml',
  'application/*+xml',
  'application/x-ndjson',
  'image/svg+xml',
  'application/wasm',
];

const options = z.strictObject({
  /** Codings offered, in the server's order of preference. */
  encodings: z
    .array(z.enum(['br', 'gzip']))
    .min(1)
    .default(['br', 'gzip']),
  /** Responses declared smaller than this are sent as they are. */
  threshold: size().prefault('1kb'),
  /** Compressible media types; `*` matches within a part (`text/*`, `application/*+json`). */
  types: z.array(z.string().regex(/^[\w.+*-]+\/[\w.+*-]+$/)).default(DEFAULT_TYPES),
  /** Brotli quality 0-11; 4 is a good trade for responses compressed on every request. */
  brotliQuality: z.number().int().min(0).max(11).default(4),
  /** gzip level 1-9. */
  gzipLevel: z.number().int().min(1).max(9).default(6),
});

function typeMatcher(types: readonly string[]): (contentType: string) => boolean {
  const res = types.map((t) => new RegExp(`^${t.replace(/[.+]/g, '\\$&').replace(/\*/g, '[^/]*')}$`, 'i'));
  return (ct) => {
    const base = ct.split(';', 1)[0]!.trim();
    return res.some((r) => r.test(base));
  };
}

type Encoder = BrotliCompress | Gzip;
type WriteArgs = [chunk?: unknown, encoding?: unknown, cb?: unknown];

/** compress: brotli or gzip by Accept-Encoding, streamed through zlib, for compressible types only. */
export const compressMiddleware = defineMiddleware({
  type: 'compress',
  options,
  create(o) {
    const compressible = typeMatcher(o.types);
    const encoder = (coding: Coding): Encoder =>
      coding === 'br'
        ? createBrotliCompress({
            params: {
              [constants.BROTLI_PARAM_QUALITY]: o.brotliQuality,
              [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
            },
          })
        : createGzip({ level: o.gzipLevel });

    /** Decides at head time; returns the coding to use, after fixing the headers for it. */
    const decide = (res: ResponseHead, method: string | undefined, coding: Coding | undefined) => {
      const type = res.getHeader('content-type');
      if (type === undefined || !compressible(String(type))) return undefined;
      // The body depends on Accept-Encoding whether or not this client gets it compressed.
      res.setHeader('vary', appendVary(res.getHeader('vary'), 'Accept-Encoding'));
      const status = res.statusCode;
      if (
        coding === undefined ||
        method === 'HEAD' ||
        status < 200 ||
        status === 204 ||
        status === 206 ||
        status === 304
      )
        return undefined;
      const existing = res.getHeader('content-encoding');
      if (existing !== undefined && String(existing).toLowerCase() !== 'identity') return undefined;
      if (/(?:^|,)\s*no-transform\s*(?:,|$)/i.test(String(res.getHeader('cache-control') ?? '')))
        return undefined;
      const length = res.getHeader('content-length');
      if (length !== undefined && Number(length) < o.threshold) return undefined;
      res.setHeader('content-encoding', coding);
      res.removeHeader('content-length');
      // A strong ETag names exact bytes; the compressed bytes differ (RFC 9110 8.8.3).
      const etag = res.getHeader('etag');
      if (typeof etag === 'string' && !etag.startsWith('W/')) res.setHeader('etag', `W/${etag}`);
      return coding;
    };

    return (next) => (ctx) => {
      const { req, res } = ctx;
      const ae = req.headers['accept-encoding'];
      const coding = negotiate(ae, o.encodings);
      let zs: Encoder | undefined;
      const write = res.write;
      const end = res.end;
      onResponseHead(res, (r) => {
        const chosen = decide(r, req.method, coding);
        if (chosen === undefined) return;
        const z = encoder(chosen);
        zs = z;
        z.on('data', (out: Buffer) => {
          if (!(write as (chunk: Buffer) => boolean).call(res, out)) {
            z.pause();
            res.once('drain', () => z.resume());
          }
        });
        // A producer waiting for 'drain' after a full encoder must hear about it.
        z.on('drain', () => res.emit('drain'));
        z.on('error', () => res.destroy());
        res.once('close', () => {
          if (!z.writableFinished) z.destroy();
        });
      });
      res.write = function compressedWrite(this: ServerResponse, ...args: WriteArgs) {
        if (!res.headersSent) res.writeHead(res.statusCode);
        if (zs === undefined) return (write as (...a: WriteArgs) => boolean).apply(res, args);
        return (zs.write as (...a: WriteArgs) => boolean).apply(zs, args);
      } as ServerResponse['write'];
      res.end = function compressedEnd(this: ServerResponse, ...args: WriteArgs) {
        let [chunk, encoding, cb] = args;
        if (typeof chunk === 'function') [chunk, encoding, cb] = [undefined, undefined, chunk];
        else if (typeof encoding === 'function') [encoding, cb] = [undefined, encoding];
        if (!res.headersSent) {
          // A whole body in one end(): its size is known, so the threshold can apply.
          if (
            chunk != null &&
            res.getHeader('content-length') === undefined &&
            !res.hasHeader('transfer-encoding')
          )
            res.setHeader('content-length', Buffer.byteLength(chunk as string, encoding as BufferEncoding));
          res.writeHead(res.statusCode);
        }
        const z = zs;
        if (z === undefined)
          return (end as (...a: WriteArgs) => ServerResponse).call(res, chunk, encoding, cb);
        z.once('end', () => (end as (...a: WriteArgs) => ServerResponse).call(res, cb));
        if (chunk != null) z.end(chunk, encoding as BufferEncoding);
        else z.end();
        return res;
      } as ServerResponse['end'];
      return next(ctx);
    };
  },
});
