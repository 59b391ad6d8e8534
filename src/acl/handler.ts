import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { loadConfigFile } from '../core/config.js';
import { TrellisError } from '../core/errors.js';
import { defineHandler } from '../handlers/types.js';
import { sendProblem } from '../http/problem.js';
import type { RequestContext } from '../http/types.js';
import { type TranslateOptions, translateSchema } from './schema.js';
import { readBody, sendLegacy } from './send.js';
import { createTranslation, TranslationError } from './translation.js';
import type { ModernRequest } from './types.js';

/**
 * Anti-Corruption Layer: `translate:` on a route. The modern JSON request is checked against its
 * contract, translated into the legacy call, sent to the legacy service, and the legacy answer
 * is checked, translated back and answered in the modern shape. Legacy faults and broken
 * answers become problem details with stable codes; the legacy body never reaches the client.
 * See docs/anti-corruption-layer.md.
 */
const routeSchema = z.union([
  /** The translation in its own file (the one `trellis acl test` checks), relative to this file. */
  z.strictObject({ file: z.string().min(1) }),
  translateSchema,
]);

/** Which translation a route means and the folder its relative paths start from. */
function resolveTranslation(
  o: z.output<typeof routeSchema>,
  baseDir: string,
): { options: TranslateOptions; baseDir: string } {
  if (!('file' in o)) return { options: o, baseDir };
  const file = resolve(baseDir, o.file);
  return { options: loadConfigFile(file, translateSchema), baseDir: dirname(file) };
}

export const translateHandler = defineHandler({
  type: 'translate',
  options: routeSchema,
  // A translation in its own file is read when the route is created (references get no folder
  // to resolve it from), so its service name is checked then.
  references: (o) => ('file' in o ? [] : [{ path: ['service'], service: o.service }]),
  async create(routeOptions, deps) {
    const { options, baseDir } = resolveTranslation(routeOptions, deps.baseDir);
    const pool = deps.services.get(options.service);
    if (!pool) {
      throw new TrellisError(
        'TRELLIS_E_ROUTE_INVALID',
        `route ${deps.routeName}: translate names service "${options.service}", which is not in services: add it or fix the name`,
      );
    }
    const translation = await createTranslation(options, { baseDir });
    const log = deps.logger;

    const refuse = (ctx: RequestContext, err: TranslationError) => {
      ctx.errorCode = err.code;
      if (Object.keys(err.log).length > 0 || err.httpStatus >= 500) {
        log.warn({ reqId: ctx.requestId, route: deps.routeName, code: err.code, ...err.log }, err.message);
      }
      sendProblem(ctx, {
        status: err.httpStatus,
        code: err.code,
        detail: err.message,
        extensions: err.extensions,
        // The unread rest of an oversized body must not be taken for the next request.
        ...(err.httpStatus === 413 ? { headers: { connection: 'close' } } : {}),
      });
    };

    return async (ctx) => {
      const read = await readBody(ctx.req, options.request.maxBodySize);
      if (read === 'tooLarge') {
        refuse(
          ctx,
          new TranslationError(
            'TRELLIS_E_ACL_REQUEST_INVALID',
            `the request body is larger than ${options.request.maxBodySize} bytes`,
            413,
          ),
        );
        return;
      }
      let body: unknown;
      if (read.length > 0) {
        try {
          body = JSON.parse(read.toString('utf8'));
        } catch {
          refuse(
            ctx,
            new TranslationError('TRELLIS_E_ACL_REQUEST_INVALID', 'the request body is not JSON', 400),
          );
          return;
        }
      }
      const request: ModernRequest = {
        method: ctx.req.method ?? 'GET',
        path: ctx.path,
        params: ctx.params,
        query: Object.fromEntries(new URLSearchParams(ctx.query)),
        headers: flatHeaders(ctx.req.headers),
        body,
        ...(ctx.state.jwt === undefined ? {} : { jwt: ctx.state.jwt as Record<string, unknown> }),
      };
      try {
        const legacy = await translation.toLegacy(request);
        const started = performance.now();
        const answer = await sendLegacy(pool, {
          ...legacy,
          headers: { ...legacy.headers, 'x-request-id': ctx.requestId },
          maxBodySize: options.legacy.maxBodySize,
          timeoutMs: options.legacy.timeout,
          hashKey: pool.hashKey?.(ctx.req.headers, ctx.clientIp),
        });
        ctx.upstreamMs = performance.now() - started;
        ctx.upstream = answer.upstream;
        if (!answer.ok) {
          refuse(
            ctx,
            new TranslationError(answer.code, answer.detail, answer.status, {}, { reason: answer.reason }),
          );
          return;
        }
        const modern = await translation.fromLegacy(answer.status, answer.headers, answer.body, request);
        const text = JSON.stringify(modern.body ?? null);
        ctx.responseBytes = Buffer.byteLength(text);
        ctx.res.writeHead(modern.status, {
          ...modern.headers,
          'content-type': 'application/json',
          'content-length': ctx.responseBytes,
          'x-request-id': ctx.requestId,
        });
        ctx.res.end(ctx.req.method === 'HEAD' ? undefined : text);
      } catch (err) {
        if (err instanceof TranslationError) {
          refuse(ctx, err);
          return;
        }
        if (err instanceof TrellisError && EXPRESSION_ERRORS.has(err.code)) {
          refuse(
            ctx,
            new TranslationError(
              err.code,
              'the translation could not be evaluated; the gateway log has the details',
              500,
              {},
              { reason: err.message },
            ),
          );
          return;
        }
        throw err;
      }
    };
  },
});

/** A JSONata expression that failed or hit its limit while answering: the route's fault, a 500. */
const EXPRESSION_ERRORS = new Set(['TRELLIS_E_ACL_EXPRESSION_FAILED', 'TRELLIS_E_ACL_EXPRESSION_LIMIT']);

function flatHeaders(h: RequestContext['req']['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}
