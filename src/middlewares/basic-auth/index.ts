import { z } from 'zod';
import type { RequestContext } from '../../http/types.js';
import { refuse } from '../_support/refuse.js';
import { setRequestHeader } from '../_support/request-headers.js';
import { defineMiddleware } from '../types.js';
import { hashPassword, parsePasswordHash, verifyPassword } from './hash.js';

export { hashPassword } from './hash.js';

const options = z.strictObject({
  /** Users and their scrypt password hashes (`$scrypt$N=…`); plain passwords are refused. */
  users: z
    .array(
      z.strictObject({
        name: z
          .string()
          .min(1)
          .regex(/^[^:]+$/, 'a user name cannot contain ":"'),
        hash: z.string().refine((s) => parsePasswordHash(s) !== undefined, {
          message:
            'expected a scrypt hash like $scrypt$N=16384,r=8,p=1$salt$hash (see docs/gateway-offloading.md)',
        }),
      }),
    )
    .min(1),
  /** The realm browsers show in their login prompt. */
  realm: z
    .string()
    .regex(/^[^"\\]*$/, 'no quotes or backslashes')
    .default('trellis'),
  /** Header that tells the service who logged in (any client-sent copy is replaced). */
  userHeader: z.string().min(1).optional(),
  /** Forward the Authorization header upstream (default: removed). */
  forwardAuthorization: z.boolean().default(false),
});

function parseBasic(header: string | undefined): [string, string] | undefined {
  if (header?.slice(0, 6).toLowerCase() !== 'basic ') return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 1 ? undefined : [decoded.slice(0, colon), decoded.slice(colon + 1)];
}

/** basicAuth: HTTP Basic with scrypt-hashed passwords. */
export const basicAuthMiddleware = defineMiddleware({
  type: 'basicAuth',
  options,
  async create(o) {
    const users = new Map(o.users.map((u) => [u.name, parsePasswordHash(u.hash)!]));
    // Unknown users are checked against a dummy hash too, so timing does not reveal who exists.
    const dummy = parsePasswordHash(await hashPassword('trellis-dummy'))!;
    const challenge = `Basic realm="${o.realm}", charset="UTF-8"`;
    const deny = (ctx: RequestContext, detail: string) =>
      refuse(ctx, {
        status: 401,
        code: 'TRELLIS_E_BASIC_AUTH_INVALID',
        detail,
        headers: { 'www-authenticate': challenge },
      });
    return (next) => async (ctx) => {
      const creds = parseBasic(ctx.req.headers.authorization);
      if (!o.forwardAuthorization) setRequestHeader(ctx.req, 'authorization', undefined);
      if (o.userHeader) setRequestHeader(ctx.req, o.userHeader, undefined);
      if (!creds) return deny(ctx, 'log in with a user name and password');
      const [user, password] = creds;
      const stored = users.get(user);
      const ok = await verifyPassword(password, stored ?? dummy);
      if (!ok || !stored) return deny(ctx, 'the user name or password is wrong');
      ctx.state.basicAuth = { user };
      if (o.userHeader) setRequestHeader(ctx.req, o.userHeader, user);
      return next(ctx);
    };
  },
});
