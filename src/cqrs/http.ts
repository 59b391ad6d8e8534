import type { IncomingMessage, ServerResponse } from 'node:http';
import { isTrellisError, TrellisError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { sendProblem } from '../http/problem.js';
import type { Bus } from './bus.js';

export interface CqrsHttpOptions {
  /** Commands, mounted as `POST {basePath}/commands/{name}` with a JSON body. */
  commands?: Bus;
  /** Queries, mounted as `GET {basePath}/queries/{name}?param=…`. */
  queries?: Bus;
  /** Prefix for both (default empty). */
  basePath?: string;
  /** Who is calling, for the buses' authorization hook (e.g. from a gateway's JWT header). */
  principal?: (req: IncomingMessage) => unknown;
  /** Largest command body accepted (default 1 MiB). */
  maxBodyBytes?: number;
  /**
   * Where an unknown command or query name is logged with the names that do exist (a 404 never
   * lists them to the caller). Default: none.
   */
  logger?: Logger;
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      throw new TrellisError('TRELLIS_E_CQRS_BODY_TOO_LARGE', `the command body is over ${limit} bytes`, {
        status: 413,
      });
    }
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new TrellisError('TRELLIS_E_CQRS_BAD_JSON', 'the command body is not valid JSON', { status: 400 });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body ?? null);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * A node:http request listener exposing buses: commands answer 202 with the append position
 * (pass it to a query's `waitForProjection` for read-your-writes), a conflict that survived the
 * retries answers 409, a rejected or invalid command 422, all as RFC 9457 problem details.
 * Unknown errors answer 500 without internals. Requests it does not own get 404.
 */
export function cqrsHttpHandler(
  options: CqrsHttpOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const base = (options.basePath ?? '').replace(/\/$/, '');
  const limit = options.maxBodyBytes ?? 1024 * 1024;
  return (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const path = url.pathname.startsWith(base) ? url.pathname.slice(base.length) : '';
      const m = /^\/(commands|queries)\/([^/]+)$/.exec(path);
      const bus =
        m?.[1] === 'commands' ? options.commands : m?.[1] === 'queries' ? options.queries : undefined;
      if (!m || !bus) {
        sendProblem(res, {
          status: 404,
          code: 'TRELLIS_E_BUS_NO_HANDLER',
          detail: `nothing at ${url.pathname}`,
        });
        return;
      }
      const wanted = m[1] === 'commands' ? 'POST' : 'GET';
      if (req.method !== wanted) {
        sendProblem(res, {
          status: 405,
          code: 'TRELLIS_E_CQRS_METHOD',
          detail: `${m[1]} take ${wanted}`,
          headers: { allow: wanted },
        });
        return;
      }
      const name = decodeURIComponent(m[2]!);
      const principal = options.principal?.(req);
      if (wanted === 'POST') {
        const payload = await readJson(req, limit);
        const key = req.headers['idempotency-key'];
        const result = (await bus.send(name, payload, {
          principal,
          ...(typeof key === 'string' ? { idempotencyKey: key } : {}),
        })) as { position?: number; nextVersion?: number } | undefined;
        json(res, 202, {
          position: result?.position ?? null,
          ...(result?.nextVersion === undefined ? {} : { nextVersion: result.nextVersion }),
        });
      } else {
        json(res, 200, await bus.send(name, Object.fromEntries(url.searchParams), { principal }));
      }
    })().catch((err: unknown) => {
      if (isTrellisError(err, 'TRELLIS_E_BUS_NO_HANDLER')) {
        const kind = (req.url ?? '').includes('/commands/') ? options.commands : options.queries;
        options.logger?.warn(
          { path: req.url?.split('?')[0], known: kind?.names() ?? [] },
          'no handler for this name: answered 404 without listing the known names',
        );
      }
      if (isTrellisError(err)) {
        const status = err.status ?? 500;
        sendProblem(res, {
          status,
          code: err.code,
          detail:
            status >= 500 && err.code !== 'TRELLIS_E_PROJECTION_TIMEOUT' ? 'the service failed' : err.message,
          ...(err.details && status < 500 ? { extensions: { details: err.details } } : {}),
        });
        return;
      }
      // A handler's own bug: answer without leaking its message or stack.
      sendProblem(res, { status: 500, code: 'TRELLIS_E_CQRS_HANDLER_FAILED', detail: 'the handler failed' });
    });
  };
}
