import {
  BurstyRateLimiter,
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from 'rate-limiter-flexible';
import { z } from 'zod';
import { duration } from '../../core/units.js';
import type { Handler, RequestContext } from '../../http/types.js';
import { storeBreaker, storeBreakerOptions } from '../_support/breaker.js';
import { keyFunction, limitKey } from '../_support/key.js';
import { sharedRedis } from '../_support/redis.js';
import { refuse } from '../_support/refuse.js';
import { defineMiddleware } from '../types.js';

const options = z
  .strictObject({
    /** Requests allowed per `per` window, per key. */
    points: z.number().int().positive(),
    /** The window. */
    per: duration().refine((ms) => ms >= 1000, 'the window must be at least 1s'),
    /**
     * `fixedWindow` (exact counts per window), `slidingWindow` (weights the previous window, no
     * double burst at window edges) or `tokenBucket` (sustained rate plus a `burst` allowance).
     */
    algorithm: z.enum(['fixedWindow', 'slidingWindow', 'tokenBucket']).default('slidingWindow'),
    /** tokenBucket: extra requests allowed on top of `points`, refilled over `burstPer`. */
    burst: z.number().int().nonnegative().default(0),
    /** tokenBucket: the period over which the burst allowance refills. */
    burstPer: duration().prefault('1m'),
    /** Who a limit counts: `ip`, `apiKey`, `{ header: name }` or `{ jwtClaim: sub }`. */
    key: limitKey(),
    /** `memory` (this process only), a name from `stores:`, or a `redis://` URL (shared by every gateway). */
    store: z.string().min(1).default('memory'),
    /**
     * When the shared store is unreachable: `local` counts in this process's memory instead
     * (the default: limits still hold per instance), `open` lets requests through, `closed` refuses (503).
     */
    onStoreError: z.enum(['local', 'open', 'closed']).default('local'),
    /** How long one store operation may take before it counts as a store error. */
    storeTimeout: duration().prefault('250ms'),
    /** The circuit breaker in front of the shared store: `{ failures: 5, halfOpenAfter: 5s }`. */
    storeBreaker: storeBreakerOptions(),
    /** Key prefix in the shared store; default `trellis:rl:<middleware name>:`. */
    prefix: z.string().min(1).optional(),
  })
  .refine((o) => o.algorithm === 'tokenBucket' || o.burst === 0, {
    message: 'burst only applies to algorithm: tokenBucket',
    path: ['burst'],
  });

type Options = z.output<typeof options>;

/** The outcome of one request's check. */
interface Verdict {
  allowed: boolean;
  remaining: number;
  resetMs: number;
}

/** A `consume` that never rejects on limit: the sliding window decides from the counts. */
const UNBOUNDED = 1e9;

function makeLimiter(base: Record<string, unknown>, points: number, durationS: number): RateLimiterAbstract {
  const opts = { ...base, points, duration: durationS };
  if (!('storeClient' in base)) return new RateLimiterMemory(opts);
  // No insuranceLimiter: a store error must reach the breaker, which then picks the fallback.
  return new RateLimiterRedis({ ...opts, storeClient: base.storeClient, rejectIfRedisNotReady: true });
}

/** Builds the check for one algorithm on top of rate-limiter-flexible limiters. */
function checker(o: Options, base: Record<string, unknown>): (key: string) => Promise<Verdict> {
  const windowS = o.per / 1000;
  if (o.algorithm === 'slidingWindow') {
    // Sliding window counter (two fixed windows, the previous weighted by its overlap): one
    // counter per window kept for two windows, so the store keeps doing the atomic increments.
    const counter = makeLimiter(base, UNBOUNDED, windowS * 2);
    // The previous window no longer grows once it is over, so its count is read once per key
    // per window and remembered until the window rolls: one store call per request instead of
    // two. (With a shared store, increments another instance makes in the first milliseconds
    // of a window to requests it received in the last may be missed: a few requests at most.)
    let cachedIndex = -1;
    let previousCounts = new Map<string, number>();
    return async (key) => {
      const now = Date.now();
      const index = Math.floor(now / o.per);
      const into = (now % o.per) / o.per;
      if (index !== cachedIndex) {
        cachedIndex = index;
        previousCounts = new Map();
      }
      let previous = previousCounts.get(key);
      let current: RateLimiterRes;
      if (previous === undefined) {
        const [c, p] = await Promise.all([
          counter.consume(`${key}:${index}`, 1),
          counter.get(`${key}:${index - 1}`),
        ]);
        current = c;
        previous = p?.consumedPoints ?? 0;
        if (cachedIndex === index) previousCounts.set(key, previous);
      } else current = await counter.consume(`${key}:${index}`, 1);
      const estimate = previous * (1 - into) + current.consumedPoints;
      return {
        allowed: estimate <= o.points,
        remaining: Math.max(0, Math.floor(o.points - estimate)),
        resetMs: o.per - (now % o.per),
      };
    };
  }
  const main = makeLimiter(base, o.points, windowS);
  const limiter =
    o.algorithm === 'tokenBucket' && o.burst > 0
      ? new BurstyRateLimiter(
          main,
          makeLimiter({ ...base, keyPrefix: `${base.keyPrefix}burst:` }, o.burst, o.burstPer / 1000),
        )
      : main;
  return async (key) => {
    try {
      const r = await limiter.consume(key, 1);
      return { allowed: true, remaining: r.remainingPoints, resetMs: r.msBeforeNext };
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      return { allowed: false, remaining: 0, resetMs: err.msBeforeNext };
    }
  };
}

/** rateLimit: counts requests per key in memory or Redis; 429 + RateLimit-* + Retry-After past the limit. */
export const rateLimitMiddleware = defineMiddleware({
  type: 'rateLimit',
  options,
  async create(o, deps) {
    // The runtime's connection for the store: opened once per process, closed by the runtime.
    const client = await sharedRedis(o.store, deps.shared, o.storeTimeout);
    const base: Record<string, unknown> = { keyPrefix: o.prefix ?? `trellis:rl:${deps.name}:` };
    if (client) base.storeClient = client;
    const inStore = checker(o, base);
    // onStoreError local: this process's own counters while the store fails or its breaker is open.
    const local =
      client && o.onStoreError === 'local' ? checker(o, { keyPrefix: base.keyPrefix }) : undefined;
    const breaker = client
      ? storeBreaker(o.storeBreaker, deps, `onStoreError: ${o.onStoreError}`)
      : undefined;
    const check = breaker
      ? async (key: string) => {
          try {
            return await breaker.run(() => inStore(key));
          } catch (err) {
            if (local) return local(key);
            throw err;
          }
        }
      : inStore;
    const keyOf = keyFunction(o.key);
    const limit = String(o.points);
    const policy = `${o.points};w=${Math.round(o.per / 1000)}`;
    const storeDown = (ctx: RequestContext, err: unknown) => {
      deps.logger.debug({ err, middleware: deps.name }, 'rateLimit: store error');
      if (o.onStoreError === 'open') return true;
      refuse(ctx, {
        status: 503,
        code: 'TRELLIS_E_RATE_LIMIT_UNAVAILABLE',
        detail: 'the rate-limit store is unavailable and this route fails closed: try again later',
        headers: { 'retry-after': '1' },
      });
      return false;
    };
    const middleware =
      (next: Handler): Handler =>
      async (ctx: RequestContext) => {
        let verdict: Verdict;
        try {
          verdict = await check(keyOf(ctx));
        } catch (err) {
          if (storeDown(ctx, err)) return next(ctx);
          return;
        }
        const reset = String(Math.max(1, Math.ceil(verdict.resetMs / 1000)));
        const remaining = String(verdict.remaining);
        if (!verdict.allowed) {
          refuse(ctx, {
            status: 429,
            code: 'TRELLIS_E_RATE_LIMITED',
            detail: `more than ${o.points} requests in ${o.per / 1000}s: retry after ${reset}s`,
            headers: {
              'ratelimit-limit': limit,
              'ratelimit-remaining': remaining,
              'ratelimit-reset': reset,
              'ratelimit-policy': policy,
              'retry-after': reset,
            },
          });
          return;
        }
        const res = ctx.res;
        res.setHeader('ratelimit-limit', limit);
        res.setHeader('ratelimit-remaining', remaining);
        res.setHeader('ratelimit-reset', reset);
        res.setHeader('ratelimit-policy', policy);
        return next(ctx);
      };
    // The client is the runtime's (closed by it); the breaker is this middleware's own.
    return breaker ? Object.assign(middleware, { health: () => breaker.health() }) : middleware;
  },
});
