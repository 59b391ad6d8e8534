import type { Logger } from 'pino';
import { lineWriter } from '../core/logger.js';
import type { AccessLog, RequestContext } from '../http/types.js';

/**
 * The gateway's access log: one line per finished request. Built as a JSON string directly
 * (the same members and order pino produced from an object) because pino's generic object
 * serialisation was a visible share of a proxied request's CPU time; loggers that are not
 * pino's defaults (a library user's) still get an object through their own logger.
 */

export type { AccessLog } from '../http/types.js';

/** The access log at `level` on `logger`. */
export function accessLog(logger: Logger, level: 'trace' | 'debug' | 'info' | 'warn'): AccessLog {
  const write = lineWriter(logger, level);
  if (write === undefined) {
    return (ctx, path, status, seconds) => logger[level](accessObject(ctx, path, status, seconds));
  }
  return (ctx, path, status, seconds) => write(accessFields(ctx, path, status, seconds));
}

/** `,"msg":"access",…` for a line: undefined members are left out, as pino does. */
export function accessFields(ctx: RequestContext, path: string, status: number, seconds: number): string {
  let s = `,"msg":"access","reqId":${JSON.stringify(ctx.requestId)},"method":${JSON.stringify(ctx.req.method)},"path":${JSON.stringify(path)},"status":${status}`;
  if (ctx.routeName !== undefined) s += `,"route":${JSON.stringify(ctx.routeName)}`;
  if (ctx.frontend !== undefined) s += `,"frontend":${JSON.stringify(ctx.frontend)}`;
  if (ctx.serviceName !== undefined) s += `,"service":${JSON.stringify(ctx.serviceName)}`;
  if (ctx.upstream !== undefined) s += `,"upstream":${JSON.stringify(ctx.upstream)}`;
  if (ctx.attempts !== undefined) s += `,"attempts":${ctx.attempts},"retries":${retriesOf(ctx.attempts)}`;
  if (ctx.retriedOn !== undefined) s += `,"retriedOn":${JSON.stringify(ctx.retriedOn)}`;
  s += `,"ms":${Math.round(seconds * 1e6) / 1e3}`;
  if (ctx.upstreamMs !== undefined) s += `,"upstreamMs":${Math.round(ctx.upstreamMs * 1e3) / 1e3}`;
  s += `,"bytesIn":${bytesIn(ctx)}`;
  if (ctx.responseBytes !== undefined) s += `,"bytesOut":${ctx.responseBytes}`;
  s += `,"client":${JSON.stringify(ctx.clientIp)}`;
  if (ctx.errorCode !== undefined) s += `,"error":${JSON.stringify(ctx.errorCode)}`;
  if (ctx.shadow) s += ',"shadow":true';
  return s;
}

/** The same members as an object, for loggers with their own formatting. */
export function accessObject(ctx: RequestContext, path: string, status: number, seconds: number) {
  return {
    msg: 'access',
    reqId: ctx.requestId,
    method: ctx.req.method,
    path,
    status,
    route: ctx.routeName,
    frontend: ctx.frontend,
    service: ctx.serviceName,
    upstream: ctx.upstream,
    attempts: ctx.attempts,
    retries: ctx.attempts === undefined ? undefined : retriesOf(ctx.attempts),
    retriedOn: ctx.retriedOn,
    ms: Math.round(seconds * 1e6) / 1e3,
    upstreamMs: ctx.upstreamMs === undefined ? undefined : Math.round(ctx.upstreamMs * 1e3) / 1e3,
    bytesIn: bytesIn(ctx),
    bytesOut: ctx.responseBytes,
    client: ctx.clientIp,
    error: ctx.errorCode,
    shadow: ctx.shadow,
  };
}

/**
 * Retries are the attempts after the first; a request refused before any attempt (an open
 * breaker, a full bulkhead, no upstream) made none and retried none: its `error` says why.
 */
function retriesOf(attempts: number): number {
  return attempts > 0 ? attempts - 1 : 0;
}

function bytesIn(ctx: RequestContext): number {
  const n = Number(ctx.req.headers['content-length'] ?? 0);
  // pino writes a non-finite number as null; a garbled Content-Length never reaches here, but say 0.
  return Number.isFinite(n) ? n : 0;
}
