import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { failureOf, tlsFailureOf, upstreamTlsProblem } from './exchange/outcome.js';
import { clientResponseHeaders, type ForwardOptions, upstreamRequestHeaders } from './forward.js';
import { sendProblem } from './problem.js';
import type { RequestContext } from './types.js';
import type { AttemptOutcome, ServicePool, Upstream } from './upstream/types.js';

/** The protocol name of an Upgrade token (`websocket`, `foo/2` -> `foo`), lower-cased. */
function protocolName(token: string): string {
  const t = token.trim().toLowerCase();
  const slash = t.indexOf('/');
  return slash === -1 ? t : t.slice(0, slash);
}

/**
 * The protocol of the client's `Upgrade` list (first offered first) that `allowed` names, or
 * undefined when none is allowed. Only this token is sent upstream: a tunnel for anything else
 * would carry traffic that no route and no middleware ever sees.
 */
export function chooseUpgrade(offered: string | undefined, allowed: ReadonlySet<string>): string | undefined {
  if (offered === undefined) return undefined;
  for (const token of offered.split(',')) {
    if (allowed.has(protocolName(token))) return token.trim();
  }
  return undefined;
}

/** Whether a request asks to switch to h2c (HTTP/2 over cleartext): refused at the edge. */
export function asksForH2c(offered: string | undefined): boolean {
  return offered?.split(',').some((t) => protocolName(t) === 'h2c') === true;
}

/**
 * Proxies an HTTP Upgrade (WebSocket) request to `protocol` (from `chooseUpgrade`): undici opens
 * the upstream connection and hands over its socket on `101`, then the two sockets are piped
 * both ways until either side closes. The request has been through the route's middlewares like
 * any other, and carries the same X-Forwarded-* headers. The client side's ServerResponse stays
 * usable until then, so middlewares can still refuse an upgrade with an ordinary answer.
 */
export function forwardUpgrade(
  ctx: RequestContext,
  pool: ServicePool,
  options: ForwardOptions,
  protocol: string,
): void {
  const info = ctx.upgrade!;
  const upstream = pool.pick(options.hashKey?.(ctx));
  if (upstream === undefined) {
    ctx.errorCode = 'TRELLIS_E_NO_UPSTREAM';
    sendProblem(ctx, {
      status: 503,
      code: 'TRELLIS_E_NO_UPSTREAM',
      detail: `service "${pool.name}" has no upstream to send the request to`,
    });
    return;
  }
  ctx.upstream = upstream.id;
  ctx.attempts = 1;
  const host = options.preserveHost ? ctx.req.headers.host : upstream.origin.host;
  const started = performance.now();
  pool.begin(upstream);
  const handler = new UpgradeExchange(ctx, pool, upstream, info.socket, info.head, started, protocol);
  upstream.dispatcher.dispatch(
    {
      path: options.target(ctx),
      method: (ctx.req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: upstreamRequestHeaders(ctx, host),
      upgrade: protocol,
      headersTimeout: pool.timeouts.headers,
    },
    handler,
  );
}

class UpgradeExchange implements Dispatcher.DispatchHandler {
  private ended = false;

  constructor(
    private readonly ctx: RequestContext,
    private readonly pool: ServicePool,
    private readonly upstream: Upstream,
    private readonly client: Duplex,
    private readonly head: Buffer,
    private readonly started: number,
    private readonly protocol: string,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    if (this.client.destroyed) abort(new Error('client closed the connection'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    // The origin refused the upgrade with an ordinary answer: pass it on as one.
    this.ctx.res.writeHead(statusCode, clientResponseHeaders(rawHeaders, this.ctx.requestId));
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.ctx.res.write(chunk);
    return true;
  }

  onComplete(): void {
    this.end('success');
    this.ctx.res.end();
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, upstreamSocket: Duplex): void {
    this.end('success');
    const { client, ctx } = this;
    ctx.upstreamMs = performance.now() - this.started;
    const raw = rawHeaders ?? [];
    let switched: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toString().toLowerCase() === 'upgrade') switched = raw[i + 1]!.toString();
    }
    // The origin switched to a protocol the route did not allow: no tunnel.
    if (switched === undefined || protocolName(switched) !== protocolName(this.protocol)) {
      upstreamSocket.destroy();
      ctx.errorCode = 'TRELLIS_E_UPGRADE_REFUSED';
      sendProblem(ctx, {
        status: 502,
        code: 'TRELLIS_E_UPGRADE_REFUSED',
        detail: `service "${this.pool.name}" switched to another protocol than ${this.protocol}`,
      });
      return;
    }
    const headers = clientResponseHeaders(raw, ctx.requestId);
    let head = `HTTP/1.1 ${statusCode} Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${switched}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    ctx.res.detachSocket(client as never);
    // The access log and metrics read the status from the response object.
    ctx.res.statusCode = statusCode;
    client.write(`${head}\r\n`);
    if (this.head.length > 0) upstreamSocket.write(this.head);
    upstreamSocket.pipe(client);
    client.pipe(upstreamSocket);
    let closed = false;
    const closeBoth = () => {
      if (closed) return;
      closed = true;
      client.destroy();
      upstreamSocket.destroy();
      ctx.res.emit('close');
    };
    client.once('close', closeBoth);
    upstreamSocket.once('close', closeBoth);
    client.on('error', closeBoth);
    upstreamSocket.on('error', closeBoth);
  }

  onError(err: Error): void {
    const { outcome, kind } = failureOf(err);
    this.end(outcome);
    if (this.ctx.res.headersSent) {
      this.client.destroy();
      return;
    }
    const tlsReason = kind === 'timeout' ? undefined : tlsFailureOf(err, this.upstream);
    const problem =
      tlsReason !== undefined
        ? upstreamTlsProblem(this.pool.name, this.upstream.id, tlsReason)
        : {
            status: kind === 'timeout' ? 504 : 502,
            code: kind === 'timeout' ? 'TRELLIS_E_UPSTREAM_TIMEOUT' : 'TRELLIS_E_UPSTREAM_UNAVAILABLE',
            detail: `service "${this.pool.name}" did not accept the upgrade`,
          };
    this.ctx.errorCode = problem.code;
    sendProblem(this.ctx, problem);
    this.ctx.res.once('finish', () => this.client.destroy());
  }

  private end(outcome: AttemptOutcome): void {
    if (this.ended) return;
    this.ended = true;
    this.pool.end(this.upstream, outcome, performance.now() - this.started);
  }
}
