import { z } from 'zod';
import { duration } from '../../core/units.js';
import { keyFunction, limitKey } from '../_support/key.js';
import { refuse } from '../_support/refuse.js';
import { defineMiddleware } from '../types.js';

const options = z.strictObject({
  /** Requests in progress allowed at once, per key. */
  max: z.number().int().positive(),
  /** What the cap is counted per: `ip`, `apiKey`, `{ header: name }` or `{ jwtClaim: sub }`. */
  key: limitKey(),
  /** The `Retry-After` sent with a 503. */
  retryAfter: duration().prefault('1s'),
});

/** inFlight: a bulkhead; at most `max` concurrent requests per key, 503 + Retry-After past it. */
export const inFlightMiddleware = defineMiddleware({
  type: 'inFlight',
  options,
  create(o) {
    const keyOf = keyFunction(o.key);
    const counts = new Map<string, number>();
    const retryAfter = String(Math.max(1, Math.ceil(o.retryAfter / 1000)));
    return (next) => (ctx) => {
      const key = keyOf(ctx);
      const n = counts.get(key) ?? 0;
      if (n >= o.max) {
        refuse(ctx, {
          status: 503,
          code: 'TRELLIS_E_TOO_MANY_IN_FLIGHT',
          detail: `more than ${o.max} requests in progress for you: retry after ${retryAfter}s`,
          headers: { 'retry-after': retryAfter },
        });
        return;
      }
      counts.set(key, n + 1);
      // 'close' fires once for every response: finished, failed or abandoned by the client.
      ctx.res.once('close', () => {
        const left = (counts.get(key) ?? 1) - 1;
        if (left <= 0) counts.delete(key);
        else counts.set(key, left);
      });
      return next(ctx);
    };
  },
});
