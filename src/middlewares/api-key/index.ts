import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { RequestContext } from '../../http/types.js';
import { refuse } from '../_support/refuse.js';
import { setRequestHeader } from '../_support/request-headers.js';
import { defineMiddleware } from '../types.js';

const options = z
  .strictObject({
    /** Accepted keys, stored as the sha256 hex of the key (`${ENV}` works for the hash). */
    keys: z
      .array(
        z.strictObject({
          /** The key's name: in `ctx.state.apiKey`, logs and rate-limit keys. Never the key itself. */
          name: z.string().min(1),
          /** `sha256sum` of the key, hex. */
          sha256: z
            .string()
            .regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex digits: printf %s "$KEY" | sha256sum'),
        }),
      )
      .min(1),
    /** Request header carrying the key. */
    header: z.string().min(1).default('x-api-key'),
    /** Query parameter that may carry the key instead (off unless named). */
    query: z.string().min(1).optional(),
    /** Header that tells the service which key was used (any client-sent copy is replaced). */
    nameHeader: z.string().min(1).optional(),
    /** Forward the key itself upstream (default: it is removed). */
    forwardKey: z.boolean().default(false),
  })
  .refine((o) => new Set(o.keys.map((k) => k.name)).size === o.keys.length, {
    message: 'key names must be unique',
    path: ['keys'],
  });

/** Takes the key out of the query string (so it is neither forwarded nor logged upstream). */
function takeFromQuery(ctx: RequestContext, param: string, strip: boolean): string | undefined {
  if (!ctx.query) return undefined;
  const params = new URLSearchParams(ctx.query);
  const value = params.get(param);
  if (value === null || !strip) return value ?? undefined;
  params.delete(param);
  ctx.query = params.toString();
  ctx.req.url = ctx.query ? `${ctx.path}?${ctx.query}` : ctx.path;
  return value;
}

/** apiKey: a named key from a header or query parameter, checked against sha256 hashes. */
export const apiKeyMiddleware = defineMiddleware({
  type: 'apiKey',
  options,
  create(o) {
    const stored = o.keys.map((k) => ({ name: k.name, digest: Buffer.from(k.sha256, 'hex') }));
    const header = o.header.toLowerCase();
    const find = (presented: string) => {
      const digest = createHash('sha256').update(presented).digest();
      // Compare with every key, without stopping early: timing says nothing about which matched.
      let found: string | undefined;
      for (const k of stored) if (timingSafeEqual(k.digest, digest) && found === undefined) found = k.name;
      return found;
    };
    return (next) => (ctx) => {
      const h = ctx.req.headers[header];
      let presented = Array.isArray(h) ? h[0] : h;
      if (presented !== undefined && !o.forwardKey) setRequestHeader(ctx.req, header, undefined);
      if (o.query !== undefined) presented ??= takeFromQuery(ctx, o.query, !o.forwardKey);
      if (o.nameHeader) setRequestHeader(ctx.req, o.nameHeader, undefined);
      if (!presented) {
        refuse(ctx, {
          status: 401,
          code: 'TRELLIS_E_API_KEY_MISSING',
          detail: `send an API key in the ${o.header} header`,
        });
        return;
      }
      const name = find(presented);
      if (name === undefined) {
        refuse(ctx, {
          status: 401,
          code: 'TRELLIS_E_API_KEY_INVALID',
          detail: 'the API key is not valid',
        });
        return;
      }
      ctx.state.apiKey = { name };
      if (o.nameHeader) setRequestHeader(ctx.req, o.nameHeader, name);
      return next(ctx);
    };
  },
});
