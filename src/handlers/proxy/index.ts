import { z } from 'zod';
import { TrellisError } from '../../core/errors.js';
import { duration } from '../../core/units.js';
import { type ForwardOptions, forward } from '../../http/forward.js';
import { sendProblem } from '../../http/problem.js';
import { chooseUpgrade, forwardUpgrade } from '../../http/upgrade.js';
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
    /** Proxy WebSocket upgrades (default true). */
    websocket: z.boolean().default(true),
    /**
     * Other Upgrade protocols this route tunnels (default none): a tunnel carries traffic no
     * middleware sees, so each one is named here. `h2c` is always refused at the edge.
     */
    upgrades: z
      .array(
        z
          .string()
          .regex(
            /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(\/[!#$%&'*+.^_`|~0-9A-Za-z-]+)?$/,
            'an Upgrade protocol is a token like websocket or foo/2',
          )
          .refine((p) => p.toLowerCase().split('/')[0] !== 'h2c', {
            message:
              'h2c upgrades are refused at the edge (they would tunnel HTTP/2 past every route): remove it',
          }),
      )
      .default([]),
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
    const upgrades = new Set(o.upgrades.map((p) => p.toLowerCase().split('/')[0]!));
    if (o.websocket) upgrades.add('websocket');
    return (ctx) => {
      ctx.serviceName = pool.name;
      if (ctx.upgrade === undefined) return forward(ctx, pool, options);
      const protocol = chooseUpgrade(ctx.req.headers.upgrade, upgrades);
      if (protocol !== undefined) return forwardUpgrade(ctx, pool, options, protocol);
      ctx.errorCode = 'TRELLIS_E_UPGRADE_REFUSED';
      sendProblem(ctx, {
        status: 426,
        code: 'TRELLIS_E_UPGRADE_REFUSED',
        detail: `this route does not tunnel ${JSON.stringify(ctx.req.headers.upgrade ?? '')}${upgrades.size === 0 ? '' : ` (it allows ${[...upgrades].join(', ')})`}`,
      });
    };
  },
});

/** The consistent-hash key, when the service balances by hash (the pool knows its own rule). */
function hashKeyOption(pool: ServicePool): Pick<ForwardOptions, 'hashKey'> {
  if (pool.hashKey === undefined) return {};
  return { hashKey: (ctx) => pool.hashKey!(ctx.req.headers, ctx.clientIp) };
}
