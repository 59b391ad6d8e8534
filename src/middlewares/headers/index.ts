import { z } from 'zod';
import { duration } from '../../core/units.js';
import type { ResponseFilter } from '../../http/response.js';
import { setRequestHeader } from '../_support/request-headers.js';
import { defineMiddleware } from '../types.js';

const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a valid header name');
const edits = () =>
  z
    .strictObject({
      /** Replace (or create) these headers. */
      set: z.record(headerName, z.string()).default({}),
      /** Append these values after any existing ones. */
      add: z.record(headerName, z.string()).default({}),
      /** Remove these headers. */
      remove: z.array(headerName).default([]),
    })
    .default({ set: {}, add: {}, remove: [] });

const options = z.strictObject({
  /** Edits to the request before it goes upstream. */
  request: edits(),
  /** Edits to the response before it goes to the client. */
  response: edits(),
  /** Adds HSTS, X-Content-Type-Options, X-Frame-Options and Referrer-Policy (explicit `set` wins). */
  securityHeaders: z.boolean().default(false),
  /** HSTS max-age for the preset. */
  hstsMaxAge: duration().prefault('365d'),
});

type Edits = z.output<ReturnType<typeof edits>>;

function isEmpty(e: Edits) {
  return Object.keys(e.set).length === 0 && Object.keys(e.add).length === 0 && e.remove.length === 0;
}

/** headers: add, set and remove request and response headers; optional security preset. */
export const headersMiddleware = defineMiddleware({
  type: 'headers',
  options,
  create(o) {
    const response: Edits = { set: { ...o.response.set }, add: o.response.add, remove: o.response.remove };
    if (o.securityHeaders) {
      const preset: Record<string, string> = {
        'Strict-Transport-Security': `max-age=${Math.floor(o.hstsMaxAge / 1000)}; includeSubDomains`,
        'X-Content-Type-Options': 'nosniff',
        'X-Frame-Options': 'DENY',
        'Referrer-Policy': 'strict-origin-when-cross-origin',
      };
      const explicit = new Set(Object.keys(response.set).map((k) => k.toLowerCase()));
      for (const [k, v] of Object.entries(preset)) if (!explicit.has(k.toLowerCase())) response.set[k] = v;
    }
    const req = o.request;
    const editRequest = !isEmpty(req);
    const editResponse = !isEmpty(response);
    // The response phase: one filter for every request (it holds no per-request state).
    const responseEdits: ResponseFilter = {
      head(res) {
        for (const name of response.remove) res.removeHeader(name);
        for (const [k, v] of Object.entries(response.set)) res.setHeader(k, v);
        for (const [k, v] of Object.entries(response.add)) res.appendHeader(k, v);
        return undefined;
      },
    };
    return (next) => (ctx) => {
      if (editRequest) {
        for (const name of req.remove) setRequestHeader(ctx.req, name, undefined);
        for (const [k, v] of Object.entries(req.set)) setRequestHeader(ctx.req, k, v);
        for (const [k, v] of Object.entries(req.add)) {
          const cur = ctx.req.headers[k.toLowerCase()];
          setRequestHeader(ctx.req, k, cur === undefined ? v : `${String(cur)}, ${v}`);
        }
      }
      if (editResponse) ctx.onResponse(responseEdits);
      return next(ctx);
    };
  },
});
