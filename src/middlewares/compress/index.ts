import { type BrotliCompress, constants, createBrotliCompress, createGzip, type Gzip } from 'node:zlib';
import { z } from 'zod';
import { size } from '../../core/units.js';
import type { ResponseHead } from '../../http/response.js';
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
      const coding = negotiate(req.headers['accept-encoding'], o.encodings);
      let zs: Encoder | undefined;
      // The response phase: decide on the head, then stream the body through zlib.
      ctx.onResponse({
        head(r, out) {
          const chosen = decide(r, req.method, coding);
          if (chosen === undefined) return undefined;
          const z = encoder(chosen);
          zs = z;
          z.on('data', (chunk: Buffer) => {
            if (!out.write(chunk)) {
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
          return undefined;
        },
        write(chunk, out) {
          return zs === undefined ? out.write(chunk) : zs.write(chunk);
        },
        end(out) {
          const z = zs;
          if (z === undefined) return out.end();
          z.once('end', () => out.end());
          z.end();
        },
      });
      return next(ctx);
    };
  },
});
