import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { duration } from '../../core/units.js';
import { refuse } from '../_support/refuse.js';
import { defineMiddleware } from '../types.js';

const options = z.strictObject({
  /** Time from the request's arrival until the response head must be sent; past it: 504. */
  request: duration(),
  /** Time for the client to send the whole request body; past it: 408. Default: no limit. */
  body: duration().optional(),
});

/** After the gateway answered for it, a late handler's writes go nowhere instead of throwing. */
function silence(res: ServerResponse): void {
  const noop = () => res;
  res.writeHead = noop as unknown as ServerResponse['writeHead'];
  res.setHeader = noop as unknown as ServerResponse['setHeader'];
  res.removeHeader = () => {};
  res.write = (() => true) as ServerResponse['write'];
  res.end = noop as unknown as ServerResponse['end'];
}

/** timeout: 504 when the response has not started in time, 408 when the request body is too slow. */
export const timeoutMiddleware = defineMiddleware({
  type: 'timeout',
  options,
  create(o) {
    return (next) => (ctx) => {
      const { req, res } = ctx;
      let bodyTimer: NodeJS.Timeout | undefined;
      const requestTimer = setTimeout(() => {
        if (res.headersSent) return;
        refuse(ctx, {
          status: 504,
          code: 'TRELLIS_E_ROUTE_TIMEOUT',
          detail: `no response within ${o.request}ms: the service is slow; try again later`,
        });
        silence(res);
      }, o.request);
      if (o.body !== undefined && !req.complete) {
        bodyTimer = setTimeout(() => {
          if (req.complete || res.headersSent) return;
          refuse(ctx, {
            status: 408,
            code: 'TRELLIS_E_BODY_TIMEOUT',
            detail: `the request body did not arrive within ${o.body}ms: send it faster`,
            headers: { connection: 'close' },
          });
          silence(res);
          res.once('finish', () => setImmediate(() => req.destroy()));
        }, o.body);
        req.once('end', () => clearTimeout(bodyTimer));
      }
      // Clear timers once the head is out or the exchange ends, whichever is first.
      const clear = () => {
        clearTimeout(requestTimer);
        if (bodyTimer) clearTimeout(bodyTimer);
      };
      res.once('close', clear);
      res.once('finish', clear);
      return next(ctx);
    };
  },
});
