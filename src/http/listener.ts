import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { z } from 'zod';
import { duration, size } from '../core/units.js';
import { problemBody } from './problem.js';
import { createTlsServer, type TlsServer, tlsSchema } from './tls/index.js';
import { bindUnixSocket, removeUnixSocket, type UnixSocketConfig } from './unix-socket.js';

/** The `listen:` block of a gateway, sidecar or frontend. */
export const listenSchema = z.strictObject({
  /** Address to bind; `0.0.0.0` for every IPv4 interface. */
  host: z.string().default('0.0.0.0'),
  /** Port to bind; 0 picks a free one (tests). */
  port: z.number().int().min(0).max(65535),
  /** Serve HTTPS: certificates (several by SNI), reload, mTLS, HTTP redirect (docs/gateway-offloading.md). */
  tls: tlsSchema.optional(),
  /** Largest request head (request line + headers) accepted; larger gets 431. */
  maxHeaderSize: size().default(16 * 1024),
  /** Most header fields in one request; more gets 431. */
  maxHeaderCount: z.number().int().min(1).default(100),
  /** Longest request target (path + query); longer gets 414. */
  maxUrlLength: size().default(8 * 1024),
  /** Time a client has to send the request head (slow-loris protection). */
  headersTimeout: duration().default(30_000),
  /** Time a client has to send a whole request, body included; 0: none. */
  requestTimeout: duration().default(300_000),
  /** Idle time before a kept-alive client connection is closed. */
  keepAliveTimeout: duration().default(5_000),
  /**
   * Longest silence while a client sends its request body; longer is answered 408 and never
   * counts against the upstream (the upstream's timeouts start once the body has been sent).
   */
  bodyTimeout: duration().default(60_000),
  /** `drop` (default, as nginx does) removes request headers whose name has `_`; `keep` passes them. */
  headersWithUnderscores: z
    .enum(['drop', 'keep'], { error: 'headersWithUnderscores is drop or keep' })
    .default('drop'),
  /** Route TRACE requests (default false: answered 405 at the edge). */
  allowTrace: z.boolean().default(false),
});

/**
 * A listen block as compiled: with `socket`, the listener binds that Unix socket instead of
 * host and port (the ambassador's `listen: unix:/path.sock`; see src/http/unix-socket.ts).
 */
export type ListenConfig = z.output<typeof listenSchema> & { socket?: UnixSocketConfig };

/** Where a listen block binds, in words: `127.0.0.1:8080` or `unix:/run/pay.sock`. */
export function listenAddress(listen: ListenConfig): string {
  return listen.socket === undefined ? `${listen.host}:${listen.port}` : `unix:${listen.socket.path}`;
}

export interface ListenerHandlers {
  request(req: IncomingMessage, res: ServerResponse): void;
  /** An HTTP Upgrade request; absent: upgrades are refused. */
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** The response class (node's `ServerResponse` server option): the runtime's TrellisResponse. */
  ServerResponse?: typeof ServerResponse;
}

/** A bound listener. */
export interface Listener {
  readonly server: Server;
  /** Open client connections now. */
  readonly connections: number;
  /** Binds; resolves with the bound address. */
  listen(): Promise<AddressInfo>;
  /** Stops accepting, lets in-flight requests finish within `deadlineMs`, then cuts what is left. */
  close(deadlineMs: number): Promise<void>;
}

/**
 * Creates the HTTP listener: node:http with header-size and slow-client limits, and a
 * clientError handler that answers malformed requests (smuggling attempts, oversized heads)
 * with problem details at the edge. The one place listeners are made, so HTTPS can be added here.
 */
export function createListener(
  config: ListenConfig,
  handlers: ListenerHandlers,
  /** `baseDir`: where relative certificate paths start; `onTlsReload*`: certificate reload outcomes. */
  tlsOptions: { baseDir?: string; onTlsReload?: () => void; onTlsReloadError?: (err: unknown) => void } = {},
): Listener {
  const nodeOptions = {
    maxHeaderSize: config.maxHeaderSize,
    headersTimeout: config.headersTimeout,
    requestTimeout: config.requestTimeout,
    keepAliveTimeout: config.keepAliveTimeout,
    requireHostHeader: true,
    insecureHTTPParser: false,
    ServerResponse: handlers.ServerResponse ?? ServerResponse,
  };
  const tls: TlsServer | undefined =
    config.tls === undefined
      ? undefined
      : createTlsServer(config.tls, nodeOptions, handlers.request, {
          baseDir: tlsOptions.baseDir,
          onReload: tlsOptions.onTlsReload,
          onReloadError: tlsOptions.onTlsReloadError,
        });
  const server = tls?.server ?? createServer(nodeOptions, handlers.request);
  // Node drops headers past its count silently; unlimited here, our own check answers 431.
  server.maxHeadersCount = 0;
  // Every socket, upgraded (WebSocket) ones included: node's closeAllConnections() no longer
  // sees a socket once it has been upgraded, and a forgotten one would keep the process alive.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('clientError', answerClientError);
  // CONNECT (a tunnel request) is not proxied: answered 405 rather than a dropped socket.
  server.on('connect', answerConnect);
  if (handlers.upgrade) server.on('upgrade', handlers.upgrade);
  else server.on('upgrade', (_req, socket: Duplex) => socket.destroy());

  return {
    server,
    get connections() {
      return sockets.size;
    },
    listen() {
      const socket = config.socket;
      if (socket !== undefined) return bindUnixSocket(server, socket);
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          if (!tls) return resolve(address);
          tls.listenRedirect(address.port).then(() => resolve(address), reject);
        });
      });
    },
    async close(deadlineMs) {
      if (!server.listening) return tls?.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const deadline = Date.now() + deadlineMs;
      // Idle keep-alive connections go now; busy ones after their response.
      while (sockets.size > 0 && Date.now() < deadline) {
        server.closeIdleConnections();
        await new Promise((r) => setTimeout(r, 25));
      }
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      await closed;
      await tls?.close();
      if (config.socket !== undefined) removeUnixSocket(config.socket.path);
    },
  };
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
};

/** Answers a CONNECT request 405 and closes the connection (node hands CONNECT over raw). */
function answerConnect(_req: IncomingMessage, socket: Duplex): void {
  socket.on('error', () => socket.destroy());
  writeRawProblem(
    socket,
    405,
    'TRELLIS_E_METHOD_NOT_ALLOWED',
    'CONNECT tunnels are not proxied',
    'allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n',
  );
}

/** Answers a request node's parser refused (never forwarded), then closes the connection. */
function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  let status = 400;
  let code = 'TRELLIS_E_BAD_REQUEST';
  let detail = 'the request is malformed and was not forwarded';
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    code = 'TRELLIS_E_HEADERS_TOO_LARGE';
    detail = 'the request headers are too large';
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    code = 'TRELLIS_E_REQUEST_TIMEOUT';
    detail = 'the request was not received in time';
  } else if (
    err.code === 'HPE_UNEXPECTED_CONTENT_LENGTH' ||
    err.code === 'HPE_INVALID_CONTENT_LENGTH' ||
    err.code === 'HPE_INVALID_TRANSFER_ENCODING'
  ) {
    detail = 'conflicting or invalid Content-Length / Transfer-Encoding: the request was not forwarded';
  }
  writeRawProblem(socket, status, code, detail);
}

/** Writes a problem+json answer on a socket node no longer manages, then closes it. */
function writeRawProblem(socket: Duplex, status: number, code: string, detail: string, extra = ''): void {
  const requestId = randomUUID();
  const body = problemBody({ status, code, detail }, requestId);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\ncontent-type: application/problem+json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nx-request-id: ${requestId}\r\n` +
      `${extra}connection: close\r\n\r\n${body}`,
  );
}
