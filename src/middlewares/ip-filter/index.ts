import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { refuse } from '../_support/refuse.js';
import { defineMiddleware } from '../types.js';

const cidr = z.string().refine((s) => {
  const [addr, bits, extra] = s.split('/');
  if (extra !== undefined || !addr) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d+$/.test(bits) && n <= (family === 4 ? 32 : 128);
}, 'expected an IPv4 or IPv6 address or CIDR block, like 10.0.0.0/8 or 2001:db8::/32');

const options = z
  .strictObject({
    /** When set, only these addresses or CIDR blocks may pass. */
    allow: z.array(cidr).optional(),
    /** These addresses or CIDR blocks are refused (checked before `allow`). */
    deny: z.array(cidr).default([]),
  })
  .refine((o) => o.allow !== undefined || o.deny.length > 0, 'give `allow`, `deny` or both');

function blockList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const e of entries) {
    const [addr, bits] = e.split('/') as [string, string | undefined];
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

/** `::ffff:10.1.2.3` (an IPv4 client on a dual-stack socket) is checked as 10.1.2.3. */
function normalise(ip: string): [string, 'ipv4' | 'ipv6'] | undefined {
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  const family = isIP(v4);
  if (family === 4) return [v4, 'ipv4'];
  if (family === 6) return [v4, 'ipv6'];
  return undefined;
}

/** ipFilter: allow and deny lists by CIDR on `ctx.clientIp` (already resolved via trusted proxies). */
export const ipFilterMiddleware = defineMiddleware({
  type: 'ipFilter',
  options,
  create(o) {
    const deny = blockList(o.deny);
    const allow = o.allow === undefined ? undefined : blockList(o.allow);
    const permitted = (ip: string) => {
      const n = normalise(ip);
      // An address we cannot parse is refused: fail closed.
      if (!n) return false;
      if (deny.check(n[0], n[1])) return false;
      return allow === undefined || allow.check(n[0], n[1]);
    };
    return (next) => (ctx) => {
      if (permitted(ctx.clientIp)) return next(ctx);
      refuse(ctx, {
        status: 403,
        code: 'TRELLIS_E_IP_DENIED',
        detail: 'your address may not use this route',
      });
    };
  },
});
