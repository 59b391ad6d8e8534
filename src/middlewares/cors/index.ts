import { z } from 'zod';
import { duration } from '../../core/units.js';
import type { ResponseFilter, ResponseHead } from '../../http/response.js';
import { refuse } from '../_support/refuse.js';
import { appendVary } from '../_support/vary.js';
import { defineMiddleware } from '../types.js';

const options = z
  .strictObject({
    /**
     * Allowed origins: exact (`https://shop.example`), a pattern where `*` stands for one or
     * more DNS labels (`https://*.shop.example`), or `*` for any origin (not with credentials).
     */
    origins: z.array(z.string().min(1)).min(1),
    /** Methods a preflight may ask for. */
    methods: z.array(z.string().regex(/^[A-Z]+$/)).default(['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE']),
    /** Request headers a preflight may ask for; omitted: whatever the browser asks for. */
    headers: z.array(z.string()).optional(),
    /** Response headers scripts may read. */
    exposedHeaders: z.array(z.string()).default([]),
    /** Allow cookies and Authorization (`Access-Control-Allow-Credentials: true`). */
    credentials: z.boolean().default(false),
    /** How long a browser may cache a preflight answer. */
    maxAge: duration().prefault('10m'),
  })
  .refine((o) => !(o.credentials && o.origins.includes('*')), {
    message: 'origins "*" cannot be combined with credentials: list the origins instead',
    path: ['origins'],
  });

const LABELS = '[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*';

/** A matcher for the origin list; patterns are anchored so `evil.example/?.shop.example` fails. */
function originMatcher(origins: readonly string[]): (origin: string) => boolean {
  if (origins.includes('*')) return () => true;
  const exact = new Set(origins.filter((o) => !o.includes('*')).map((o) => o.toLowerCase()));
  const patterns = origins
    .filter((o) => o.includes('*'))
    .map((o) => new RegExp(`^${o.split('*').map(escapeRegExp).join(LABELS)}$`, 'i'));
  return (origin) => exact.has(origin.toLowerCase()) || patterns.some((p) => p.test(origin));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** cors: answers preflights and adds CORS headers for allowed origins only. */
export const corsMiddleware = defineMiddleware({
  type: 'cors',
  options,
  create(o) {
    const allowed = originMatcher(o.origins);
    const anyOrigin = o.origins.includes('*');
    const methods = new Set(o.methods);
    const allowHeaders = o.headers?.map((h) => h.toLowerCase());
    const maxAge = String(Math.floor(o.maxAge / 1000));
    const exposed = o.exposedHeaders.join(', ');
    /** The response phase: the gateway owns CORS, an upstream's own Access-Control-* would contradict it. */
    const strip = (r: ResponseHead) => {
      for (const name of r.getHeaderNames()) if (name.startsWith('access-control-')) r.removeHeader(name);
      if (!anyOrigin) r.setHeader('vary', appendVary(r.getHeader('vary'), 'Origin'));
    };
    const refused: ResponseFilter = {
      head(r) {
        strip(r);
        return undefined;
      },
    };
    // One filter per allowed origin, kept (bounded): a handful of origins send every request.
    const byOrigin = new Map<string, ResponseFilter>();
    const allowedFor = (origin: string): ResponseFilter => {
      let filter = byOrigin.get(origin);
      if (filter !== undefined) return filter;
      filter = {
        head(r) {
          strip(r);
          r.setHeader('access-control-allow-origin', anyOrigin ? '*' : origin);
          if (o.credentials) r.setHeader('access-control-allow-credentials', 'true');
          if (exposed) r.setHeader('access-control-expose-headers', exposed);
          return undefined;
        },
      };
      if (byOrigin.size >= 1024) byOrigin.clear();
      byOrigin.set(origin, filter);
      return filter;
    };
    return (next) => (ctx) => {
      const { req, res } = ctx;
      const origin = req.headers.origin;
      const requestMethod = req.headers['access-control-request-method'];
      if (req.method === 'OPTIONS' && origin !== undefined && requestMethod !== undefined) {
        // A preflight is answered here and never reaches the service.
        const wanted = String(req.headers['access-control-request-headers'] ?? '')
          .split(',')
          .map((h) => h.trim().toLowerCase())
          .filter(Boolean);
        const ok =
          allowed(origin) &&
          methods.has(requestMethod) &&
          (allowHeaders === undefined || wanted.every((h) => allowHeaders.includes(h)));
        if (!ok) {
          refuse(ctx, {
            status: 403,
            code: 'TRELLIS_E_CORS_REJECTED',
            detail: 'this origin, method or header is not allowed by the CORS policy',
            headers: { vary: 'Origin' },
          });
          return;
        }
        const headers: Record<string, string> = {
          'access-control-allow-origin': anyOrigin ? '*' : origin,
          'access-control-allow-methods': o.methods.join(', '),
          'access-control-max-age': maxAge,
          vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
          'content-length': '0',
        };
        const h = allowHeaders ? o.headers!.join(', ') : wanted.join(', ');
        if (h) headers['access-control-allow-headers'] = h;
        if (o.credentials) headers['access-control-allow-credentials'] = 'true';
        res.writeHead(204, headers);
        res.end();
        return;
      }
      ctx.onResponse(origin !== undefined && allowed(origin) ? allowedFor(origin) : refused);
      return next(ctx);
    };
  },
});
