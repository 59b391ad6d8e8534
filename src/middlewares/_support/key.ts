import { z } from 'zod';
import type { RequestContext } from '../../http/types.js';

/** Who a limit counts: the client IP, a request header, the API key name or a JWT claim. */
export const limitKey = () =>
  z
    .union([
      z.literal('ip'),
      z.literal('apiKey'),
      z.strictObject({ header: z.string().min(1) }),
      z.strictObject({ jwtClaim: z.string().min(1) }),
    ])
    .default('ip');

export type LimitKey = z.output<ReturnType<typeof limitKey>>;

/**
 * A function from request to key. When the chosen value is missing (no header, no apiKey or jwt
 * middleware earlier in the chain) the client IP is used, so a client cannot escape the limit by
 * leaving the header out.
 */
export function keyFunction(key: LimitKey): (ctx: RequestContext) => string {
  if (key === 'ip') return (ctx) => `ip:${ctx.clientIp}`;
  if (key === 'apiKey')
    return (ctx) => {
      const name = (ctx.state.apiKey as { name?: string } | undefined)?.name;
      return name === undefined ? `ip:${ctx.clientIp}` : `key:${name}`;
    };
  if ('header' in key) {
    const h = key.header.toLowerCase();
    return (ctx) => {
      const v = ctx.req.headers[h];
      const s = Array.isArray(v) ? v[0] : v;
      return s ? `h:${s}` : `ip:${ctx.clientIp}`;
    };
  }
  const claim = key.jwtClaim;
  return (ctx) => {
    const v = (ctx.state.jwt as Record<string, unknown> | undefined)?.[claim];
    return v === undefined || v === null ? `ip:${ctx.clientIp}` : `jwt:${String(v)}`;
  };
}
