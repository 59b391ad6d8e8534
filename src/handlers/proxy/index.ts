import { z } from 'zod';
import { TrellisError } from '../../core/errors.js';
import { duration } from '../../core/units.js';
import { type ForwardOptions, forward } from '../../http/forward.js';
import { forwardUpgrade } from '../../http/upgrade.js';
import type { ServicePool } from '../../http/upstream/types.js';
import { defineHandler } from '../types.js';
import { compileRewrite } from './rewrite.js';

const prefix = z.string().regex(/^\/[^?#]*$/, 'a prefix starts with / and has no ? or #');

/** `proxy:` — forward the request to a service, streaming both ways. */
export const proxyHandler = defineHandler({
  type: 'proxy',
  options: z.strictObject({
    /** The service (from `services:`) to forward to. */
    service: z.string().min(1),
    stripPrefix: prefix.optional(),
    addPrefix: prefix.optional(),
    /** A new path: `{name}` is a route parameter, `{*}` the wildcard's match. */
    rewrite: z.string().startsWith('/', 'a rewrite starts with /').optional(),
    /** Send the client's Host header upstream (default) rather than the upstream's own. */
    preserveHost: z.boolean().default(true),
    /** Allow retries of POST/PATCH (only when the origin de-duplicates them). */
    retryNonIdempotent: z.boolean().default(false),
    /** Whole-exchange deadline for this route, overriding the service's `timeout`. */
    timeout: duration().optional(),
    /** Proxy WebSocket / HTTP Upgrade requests (default true). */
    websocket: z.boolean().default(true),
  }),
  references: (o) => [{ path: ['service'], service: o.service }],
  create(o, deps) {
    const pool = deps.services.get(o.service);
    if (pool === undefined) {
      throw new TrellisError(
        'TRELLIS_E_UNKNOWN_SERVICE',
        `unknown service "${o.service}": define it under services:`,
      );
    }
    const options: ForwardOptions = {
      retryNonIdempotent: o.retryNonIdempotent,
      preserveHost: o.preserveHost,
      target: compileRewrite(o),
      ...(o.timeout === undefined ? {} : { timeoutMs: o.timeout }),
      ...hashKeyOption(pool),
    };
    return (ctx) => {
      ctx.serviceName = pool.name;
      if (ctx.upgrade === undefined) forward(ctx, pool, options);
      else if (o.websocket) forwardUpgrade(ctx, pool, options);
      else {
        ctx.res.writeHead(426, { 'content-type': 'text/plain' });
        ctx.res.end('upgrades are not proxied on this route\n');
      }
    };
  },
});

/** The consistent-hash key, when the service balances by hash (the pool knows its own rule). */
function hashKeyOption(pool: ServicePool): Pick<ForwardOptions, 'hashKey'> {
  if (pool.hashKey === undefined) return {};
  return { hashKey: (ctx) => pool.hashKey!(ctx.req.headers, ctx.clientIp) };
}
