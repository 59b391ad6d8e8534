import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { size } from '../../core/units.js';
import type { RequestContext } from '../../http/types.js';
import { refuse } from '../_support/refuse.js';
import { defineMiddleware } from '../types.js';

const options = z.strictObject({
  /** The largest request body accepted, counted as it streams (not only from Content-Length). */
  max: size(),
});

function tooLarge(ctx: RequestContext, max: number): void {
  refuse(ctx, {
    status: 413,
    code: 'TRELLIS_E_BODY_TOO_LARGE',
    detail: `the request body is larger than ${max} bytes: send a smaller body`,
    headers: { connection: 'close' },
  });
}

/**
 * Counts body bytes where node's HTTP parser hands them to the request (`push`), so the count
 * does not switch the stream to flowing mode or steal data from whoever reads the body.
 */
function countPushes(req: IncomingMessage, max: number, onOver: () => void): void {
  const push = req.push;
  let seen = 0;
  let over = false;
  req.push = function countedPush(this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding) {
    if (over) return false;
    if (chunk !== null && chunk !== undefined) {
      seen += (chunk as Buffer).length;
      if (seen > max) {
        over = true;
        onOver();
        return false;
      }
    }
    return push.call(this, chunk, encoding);
  };
}

/** bodyLimit: 413 for a declared or streamed body over `max` bytes. */
export const bodyLimitMiddleware = defineMiddleware({
  type: 'bodyLimit',
  options,
  create({ max }) {
    return (next) => (ctx) => {
      const { req, res } = ctx;
      const declared = req.headers['content-length'];
      if (declared !== undefined && Number(declared) > max) {
        tooLarge(ctx, max);
        // Read and drop what the client still sends, so it can read the answer (no RST).
        req.resume();
        return;
      }
      // A body is only counted when one is announced; Content-Length bodies are capped by the
      // parser itself, chunked ones are counted as they arrive.
      if (req.headers['transfer-encoding'] === undefined) return next(ctx);
      countPushes(req, max, () => {
        // Answer 413 if nothing was answered yet, then abort the body so nothing upstream
        // takes a truncated body for a whole one.
        const abort = () => setImmediate(() => req.destroy());
        if (!res.headersSent) {
          tooLarge(ctx, max);
          res.once('finish', abort);
        } else abort();
      });
      return next(ctx);
    };
  },
});
