import { z } from 'zod';
import { defineHandler } from '../types.js';

/** `respond:` — answer directly with a fixed status, headers and body (health, redirects, stubs). */
export const respondHandler = defineHandler({
  type: 'respond',
  options: z.strictObject({
    status: z.number().int().min(200).max(599).default(200),
    headers: z.record(z.string(), z.string()).default({}),
    /** A string is sent as is (text/plain unless a content-type is given); anything else as JSON. */
    body: z.unknown().optional(),
  }),
  create(o) {
    const headers: Record<string, string | number> = { ...o.headers };
    const lower = new Set(Object.keys(headers).map((h) => h.toLowerCase()));
    let body: Buffer | undefined;
    if (o.body !== undefined) {
      const isText = typeof o.body === 'string';
      body = Buffer.from(isText ? (o.body as string) : JSON.stringify(o.body));
      if (!lower.has('content-type')) {
        headers['content-type'] = isText ? 'text/plain; charset=utf-8' : 'application/json';
      }
    }
    headers['content-length'] = body?.length ?? 0;
    return (ctx) => {
      ctx.res.writeHead(o.status, { ...headers, 'x-request-id': ctx.requestId });
      ctx.res.end(ctx.req.method === 'HEAD' ? undefined : body);
      ctx.responseBytes = body?.length ?? 0;
    };
  },
});
