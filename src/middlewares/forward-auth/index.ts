import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request } from 'undici';
import { z } from 'zod';
import { duration, size } from '../../core/units.js';
import type { Handler, RequestContext } from '../../http/types.js';
import { refuse } from '../_support/refuse.js';
import { setRequestHeader } from '../_support/request-headers.js';
import { defineMiddleware } from '../types.js';

const options = z.strictObject({
  /** The auth service: a 2xx answer lets the request through, anything else is the client's answer. */
  address: z.url({ protocol: /^https?$/ }),
  /** Request headers sent to the auth service; omitted: all but hop-by-hop and body headers. */
  requestHeaders: z.array(z.string()).optional(),
  /** Headers of a 2xx auth answer copied onto the upstream request (client copies removed). */
  responseHeaders: z.array(z.string()).default([]),
  /** How long to wait for the auth service. */
  timeout: duration().prefault('2s'),
  /** When the auth service fails or times out: `closed` refuses (503), `open` lets requests through. */
  onError: z.enum(['closed', 'open']).default('closed'),
  /** The largest refusal body passed on to the client. */
  maxBodySize: size().prefault('64kb'),
});

const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'content-length',
  'content-type',
  'content-encoding',
  'expect',
  'host',
]);

/** Headers of a refusal passed on to the client (challenges, redirects to a login page, cookies). */
const REFUSAL_HEADERS = ['www-authenticate', 'location', 'set-cookie', 'content-type', 'retry-after'];

/** forwardAuth: asks an auth service about each request; passes its chosen headers on. */
export const forwardAuthMiddleware = defineMiddleware({
  type: 'forwardAuth',
  options,
  create(o, deps) {
    const agent = new Agent({ keepAliveTimeout: 10_000, connections: 64 });
    const pick = o.requestHeaders?.map((h) => h.toLowerCase());
    const copy = o.responseHeaders.map((h) => h.toLowerCase());
    const authHeaders = (ctx: RequestContext): IncomingHttpHeaders => {
      const out: IncomingHttpHeaders = {};
      for (const [k, v] of Object.entries(ctx.req.headers)) {
        if (pick ? pick.includes(k) : !NOT_FORWARDED.has(k) && !k.startsWith('x-forwarded-')) out[k] = v;
      }
      out['x-forwarded-method'] = ctx.req.method ?? 'GET';
      out['x-forwarded-proto'] = ctx.protocol;
      out['x-forwarded-host'] = ctx.req.headers.host ?? '';
      out['x-forwarded-uri'] = ctx.req.url ?? '/';
      out['x-forwarded-for'] = ctx.clientIp;
      out['x-request-id'] = ctx.requestId;
      return out;
    };
    const middleware =
      (next: Handler): Handler =>
      async (ctx: RequestContext) => {
        for (const h of copy) setRequestHeader(ctx.req, h, undefined);
        let answer: Awaited<ReturnType<typeof request>>;
        try {
          answer = await request(o.address, {
            method: 'GET',
            headers: authHeaders(ctx) as Record<string, string>,
            dispatcher: agent,
            headersTimeout: o.timeout,
            bodyTimeout: o.timeout,
            signal: AbortSignal.timeout(o.timeout),
          });
        } catch (err) {
          deps.logger.warn({ err, middleware: deps.name }, 'forwardAuth: auth service unreachable');
          if (o.onError === 'open') return next(ctx);
          return refuse(ctx, {
            status: 503,
            code: 'TRELLIS_E_AUTH_UNAVAILABLE',
            detail: 'the authentication service did not answer: try again later',
            headers: { 'retry-after': '1' },
          });
        }
        if (answer.statusCode >= 200 && answer.statusCode < 300) {
          // Drain so the connection goes back to the pool.
          await answer.body.dump();
          for (const h of copy) {
            const v = answer.headers[h];
            if (v !== undefined) setRequestHeader(ctx.req, h, Array.isArray(v) ? v.join(', ') : v);
          }
          return next(ctx);
        }
        let body: Buffer;
        try {
          const chunks: Buffer[] = [];
          let total = 0;
          for await (const chunk of answer.body) {
            total += chunk.length;
            if (total > o.maxBodySize) throw new Error('refusal body too large');
            chunks.push(chunk);
          }
          body = Buffer.concat(chunks);
        } catch {
          answer.body.destroy();
          body = Buffer.alloc(0);
        }
        if (body.length === 0 || answer.headers['content-type'] === undefined) {
          return refuse(ctx, {
            status: answer.statusCode,
            code: 'TRELLIS_E_AUTH_REFUSED',
            detail: 'the authentication service refused this request',
            headers: pickHeaders(
              answer.headers,
              REFUSAL_HEADERS.filter((h) => h !== 'content-type'),
            ),
          });
        }
        ctx.errorCode = 'TRELLIS_E_AUTH_REFUSED';
        ctx.res.writeHead(answer.statusCode, {
          ...pickHeaders(answer.headers, REFUSAL_HEADERS),
          'content-length': body.length,
          'x-request-id': ctx.requestId,
        });
        ctx.res.end(body);
      };
    return Object.assign(middleware, { close: () => agent.close() });
  },
});

function pickHeaders(h: Record<string, string | string[] | undefined>, names: readonly string[]) {
  const out: Record<string, string | string[]> = {};
  for (const n of names) if (h[n] !== undefined) out[n] = h[n]!;
  return out;
}
