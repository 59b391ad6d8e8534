import { errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { z } from 'zod';
import { duration, size } from '../../core/units.js';
import type { Middleware, RequestContext } from '../../http/types.js';
import { refuse } from '../_support/refuse.js';
import { setRequestHeader } from '../_support/request-headers.js';
import { defineMiddleware } from '../types.js';
import { keyResolver } from './keys.js';
import { KeysUnavailable, RemoteKeySet } from './remote.js';

/** A successful verification, reused until `until` (and never past the token's `exp`). */
interface Verified {
  payload: JWTPayload;
  until: number;
}

const ASYMMETRIC = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
const SYMMETRIC = ['HS256', 'HS384', 'HS512'] as const;
const oneOrMany = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

const options = z
  .strictObject({
    /** Remote JWKS (e.g. `https://idp/.well-known/jwks.json`), cached and refreshed on unknown `kid`. */
    jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** A JWKS JSON file (relative to the configuration file). */
    jwksFile: z.string().min(1).optional(),
    /** An inline JWKS: `{ keys: [...] }`. */
    jwks: z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
    /** A shared secret for HS* tokens (use `${ENV}`); at least 32 bytes. */
    secret: z.string().min(32, 'an HMAC secret needs at least 32 bytes').optional(),
    /** Required `iss`. */
    issuer: oneOrMany,
    /** Required `aud`. */
    audience: oneOrMany,
    /** Accepted `alg` values; `none` is never accepted. Default: RS256, PS256, ES256, EdDSA (HS256 with `secret`). */
    algorithms: z
      .array(z.enum([...ASYMMETRIC, ...SYMMETRIC]))
      .min(1)
      .optional(),
    /** Allowed clock skew for `exp`, `nbf`, `iat`. */
    clockTolerance: duration().prefault('30s'),
    /** Claims that must be present. */
    requiredClaims: z.array(z.string().min(1)).default([]),
    /** Scopes the token must grant (`scope` string or `scp` array); missing ones: 403. */
    scopes: z.array(z.string().min(1)).default([]),
    /** Upstream headers filled from claims: `{ x-user-id: sub }`. Client-sent copies are removed. */
    claimHeaders: z.record(z.string().min(1), z.string().min(1)).default({}),
    /** Forward the Authorization header upstream. */
    forwardToken: z.boolean().default(true),
    /** Tokens longer than this are refused unread. */
    maxTokenSize: size().prefault('8kb'),
    /** The realm in `WWW-Authenticate`. */
    realm: z
      .string()
      .regex(/^[^"\\]*$/)
      .default('trellis'),
    /** Remote JWKS: minimum time between refetches on an unknown `kid`. */
    jwksCooldown: duration().prefault('30s'),
    /** Remote JWKS: refetch after this even when every `kid` is known. */
    jwksCacheMaxAge: duration().prefault('10m'),
    /** Remote JWKS: fetch timeout. */
    jwksTimeout: duration().prefault('5s'),
    /**
     * Remember verified tokens this long (never past their `exp`), so a client's repeated token
     * costs a map lookup instead of a signature check; 0 turns it off.
     */
    verifiedCacheTtl: duration().prefault('1m'),
    /** Most tokens remembered. */
    verifiedCacheSize: z.number().int().positive().default(10_000),
  })
  .superRefine((o, ctx) => {
    const sources = [o.jwksUrl, o.jwksFile, o.jwks, o.secret].filter((s) => s !== undefined).length;
    if (sources !== 1) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of jwksUrl, jwksFile, jwks or secret' });
    }
    // Algorithms must match the key kind: this is what rules out HS/RS confusion (an HS256 token
    // "signed" with the RSA public key) even before jose's own key-type checks.
    const algs = o.algorithms ?? [];
    const sym = algs.filter((a) => a.startsWith('HS'));
    if (o.secret !== undefined && sym.length !== algs.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['algorithms'],
        message: 'a secret only verifies HS256/HS384/HS512',
      });
    }
    if (o.secret === undefined && sym.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['algorithms'],
        message: 'HS* algorithms need `secret`, not a key set',
      });
    }
  });

type Failure = { status: number; code: string; detail: string; challenge: string; retryAfter?: number };

function scopesOf(payload: JWTPayload): Set<string> {
  const scope = payload.scope;
  const scp = payload.scp;
  const list = typeof scope === 'string' ? scope.split(' ') : Array.isArray(scp) ? scp.map(String) : [];
  return new Set(list.filter(Boolean));
}

function headerValue(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  // Claims are token-issuer text: control and non-ASCII characters are percent-encoded so a claim
  // can never break the header line or be refused by the upstream client.
  return s.replace(/[^\t\x20-\x7e]+/g, (m) => encodeURIComponent(m));
}

/** jwt: verifies a Bearer token with jose; claims go to `ctx.state.jwt` and chosen upstream headers. */
export const jwtMiddleware = defineMiddleware({
  type: 'jwt',
  options,
  create(o, deps) {
    const resolved = keyResolver(o, deps.baseDir, {
      cooldown: o.jwksCooldown,
      cacheMaxAge: o.jwksCacheMaxAge,
      fetchTimeout: o.jwksTimeout,
      logger: deps.logger,
      metrics: deps.metrics,
      name: deps.name,
    });
    const remote = resolved instanceof RemoteKeySet ? resolved : undefined;
    const key = remote ? remote.getKey : (resolved as Exclude<typeof resolved, RemoteKeySet>);
    // Fetched at load, so the first requests need not wait and /readyz knows at once.
    void remote?.refresh();
    const algorithms =
      o.algorithms ?? (o.secret !== undefined ? ['HS256'] : ['RS256', 'PS256', 'ES256', 'EdDSA']);
    const verifyOptions = {
      issuer: o.issuer,
      audience: o.audience,
      algorithms,
      clockTolerance: Math.floor(o.clockTolerance / 1000),
      requiredClaims: o.requiredClaims,
    };
    const realm = `realm="${o.realm}"`;
    const claimHeaders = Object.entries(o.claimHeaders);
    const invalid = (detail: string): Failure => ({
      status: 401,
      code: 'TRELLIS_E_JWT_INVALID',
      detail,
      challenge: `Bearer ${realm}, error="invalid_token", error_description="${detail}"`,
    });
    // Only successes are remembered, keyed by the exact token bytes: the same bytes verify the
    // same way until `exp`, except after a key is withdrawn, which the short TTL bounds.
    const verified = new Map<string, Verified>();
    const tolerance = Math.floor(o.clockTolerance / 1000);
    const fresh = (hit: Verified): boolean => {
      const now = Date.now();
      return now < hit.until && (hit.payload.exp === undefined || now / 1000 < hit.payload.exp + tolerance);
    };
    // A keep-alive connection usually sends the same token on every request: the last verified
    // token is also kept on the socket, so the common case is one string comparison instead of
    // hashing a ~1 KB token for the map lookup. Per middleware instance, so routes do not mix.
    const lastOnSocket = Symbol('jwt.lastVerified');
    type WithLast = { [lastOnSocket]?: { token: string; hit: Verified } };
    const remembered = (token: string, socket: WithLast): JWTPayload | undefined => {
      const last = socket[lastOnSocket];
      if (last !== undefined && last.token === token && fresh(last.hit)) return last.hit.payload;
      const hit = verified.get(token);
      if (!hit) return undefined;
      if (fresh(hit)) {
        socket[lastOnSocket] = { token, hit };
        return hit.payload;
      }
      verified.delete(token);
      return undefined;
    };
    const remember = (token: string, payload: JWTPayload) => {
      if (o.verifiedCacheTtl <= 0) return;
      if (verified.size >= o.verifiedCacheSize) verified.delete(verified.keys().next().value!);
      // Shared by every request with this token: frozen so no one request can change another's claims.
      verified.set(token, { payload: Object.freeze(payload), until: Date.now() + o.verifiedCacheTtl });
    };
    const verify = async (
      token: string,
      socket: WithLast,
    ): Promise<{ payload: JWTPayload } | { failure: Failure }> => {
      const known = remembered(token, socket);
      if (known) return { payload: known };
      try {
        const { payload } =
          key instanceof Uint8Array
            ? await jwtVerify(token, key, verifyOptions)
            : await jwtVerify(token, key as JWTVerifyGetKey, verifyOptions);
        remember(token, payload);
        return { payload };
      } catch (err) {
        if (err instanceof errors.JWTExpired) return { failure: invalid('the token has expired') };
        if (err instanceof errors.JWTClaimValidationFailed)
          return { failure: invalid(`the token's ${err.claim} claim is not accepted`) };
        if (err instanceof KeysUnavailable || !(err instanceof errors.JOSEError)) {
          // KeysUnavailable is logged (once per fetch) where the fetch failed.
          if (!(err instanceof KeysUnavailable))
            deps.logger.warn({ err, middleware: deps.name }, 'jwt: verification keys unavailable');
          // 503, never 401: the token may be perfectly valid, and a 401 makes clients throw it away.
          return {
            failure: {
              status: 503,
              code: 'TRELLIS_E_JWT_KEYS_UNAVAILABLE',
              detail: 'the token could not be checked: the key service is unavailable; try again later',
              challenge: `Bearer ${realm}`,
              retryAfter: err instanceof KeysUnavailable ? err.retryAfter : 1,
            },
          };
        }
        if (err instanceof errors.JOSEAlgNotAllowed)
          return { failure: invalid('the token is signed with an algorithm not accepted here') };
        if (err instanceof errors.JWKSNoMatchingKey)
          return { failure: invalid('the token is signed with an unknown key') };
        return { failure: invalid('the token is malformed or its signature is wrong') };
      }
    };
    const answer = (ctx: RequestContext, f: Failure) =>
      refuse(ctx, {
        status: f.status,
        code: f.code,
        detail: f.detail,
        headers:
          f.retryAfter === undefined
            ? { 'www-authenticate': f.challenge }
            : { 'www-authenticate': f.challenge, 'retry-after': String(f.retryAfter) },
      });

    const middleware: Middleware = (next) => async (ctx) => {
      for (const [h] of claimHeaders) setRequestHeader(ctx.req, h, undefined);
      const auth = ctx.req.headers.authorization;
      if (auth === undefined || auth.slice(0, 7).toLowerCase() !== 'bearer ') {
        // RFC 6750 3.1: no error code when the request carried no token at all.
        return refuse(ctx, {
          status: 401,
          code: 'TRELLIS_E_JWT_MISSING',
          detail: 'send a bearer token: Authorization: Bearer <token>',
          headers: { 'www-authenticate': `Bearer ${realm}` },
        });
      }
      const token = auth.slice(7).trim();
      if (token.length > o.maxTokenSize) return answer(ctx, invalid('the token is too large'));
      const result = await verify(token, ctx.req.socket as WithLast);
      if ('failure' in result) return answer(ctx, result.failure);
      const { payload } = result;
      if (o.scopes.length > 0) {
        const granted = scopesOf(payload);
        const missing = o.scopes.filter((s) => !granted.has(s));
        if (missing.length > 0) {
          return answer(ctx, {
            status: 403,
            code: 'TRELLIS_E_JWT_SCOPE',
            detail: `the token lacks the scope ${missing.join(' ')}`,
            challenge: `Bearer ${realm}, error="insufficient_scope", scope="${o.scopes.join(' ')}"`,
          });
        }
      }
      ctx.state.jwt = payload;
      for (const [h, claim] of claimHeaders) {
        const v = headerValue(payload[claim]);
        if (v !== undefined) setRequestHeader(ctx.req, h, v);
      }
      if (!o.forwardToken) setRequestHeader(ctx.req, 'authorization', undefined);
      return next(ctx);
    };
    if (!remote) return middleware;
    return Object.assign(middleware, {
      health: () => remote.health(),
      close: async () => remote.close(),
    });
  },
});
