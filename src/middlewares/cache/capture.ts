import { IncomingMessage } from 'node:http';
import { TrellisResponse } from '../../http/response.js';
import type { RequestContext } from '../../http/types.js';

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
  // The runtime's response, so the handler's answer passes through the cache's response filter.
  const res = new TrellisResponse(req);
  const copy = Object.assign(Object.create(Object.getPrototypeOf(ctx)) as RequestContext, ctx, {
    req,
    res,
    state: { ...ctx.state },
  });
  return copy;
}
