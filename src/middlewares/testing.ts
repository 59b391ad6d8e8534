import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { silentLogger } from '../core/logger.js';
import { TrellisResponse } from '../http/response.js';
import { compose, type Handler, type Middleware, type RequestContext } from '../http/types.js';
import { createRequestContext } from '../runtime/context.js';
import { StoreSet } from '../runtime/stores.js';
import type { MiddlewareDefinition, MiddlewareDeps, MiddlewareInstance } from './types.js';

/** A loopback server running one middleware chain; for middleware tests. */
export interface ChainServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Options for the test context: what the gateway's listener would have resolved. */
export interface ChainOptions {
  /** The resolved client IP (default: the socket's address). */
  clientIp?: string | ((req: RequestContext['req']) => string);
  protocol?: 'http' | 'https';
}

/** Builds the RequestContext the runtime would build: request id, client IP, path and query. */
export function contextFor(req: RequestContext['req'], res: RequestContext['res'], opts: ChainOptions = {}) {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const ctx = createRequestContext(req, res);
  ctx.clientIp =
    typeof opts.clientIp === 'function'
      ? opts.clientIp(req)
      : (opts.clientIp ?? req.socket.remoteAddress ?? '127.0.0.1');
  ctx.protocol = opts.protocol ?? 'http';
  ctx.path = q === -1 ? url : url.slice(0, q);
  ctx.query = q === -1 ? '' : url.slice(q + 1);
  return ctx;
}

/** Starts a loopback server that runs `middlewares` then `handler` for every request. */
export async function serveChain(
  middlewares: readonly Middleware[],
  handler: Handler,
  opts: ChainOptions = {},
): Promise<ChainServer> {
  const chain = compose(middlewares, handler);
  const server = createServer({ ServerResponse: TrellisResponse as typeof ServerResponse }, (req, res) => {
    const ctx = contextFor(req, res, opts);
    Promise.resolve(chain(ctx)).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Test deps for `create`: silent logger, fresh metrics registry, cwd as base folder, and stores
 * of their own (each call is like one more gateway process: its own shared connections).
 */
export function testDeps(
  overrides: Partial<MiddlewareDeps> = {},
): MiddlewareDeps & { closeStores(): Promise<void> } {
  const storeSet = new StoreSet(silentLogger());
  const stores = overrides.stores ?? {};
  return {
    logger: silentLogger(),
    metrics: new Registry(),
    name: 'test',
    baseDir: process.cwd(),
    ...overrides,
    stores,
    shared: overrides.shared ?? storeSet.view(stores),
    closeStores: () => storeSet.close(),
  };
}

/**
 * Parses raw options with the definition's schema (as a file would) and creates the middleware;
 * its `close` also closes the stores it opened (the runtime does that for a gateway).
 */
export async function createMiddleware(
  def: MiddlewareDefinition,
  raw: unknown,
  deps: Partial<MiddlewareDeps> = {},
): Promise<MiddlewareInstance> {
  const full = testDeps(deps);
  try {
    const instance = await def.create(def.options.parse(raw), full);
    const close = instance.close;
    return Object.assign(instance, {
      close: async () => {
        await close?.();
        await full.closeStores();
      },
    });
  } catch (err) {
    await full.closeStores();
    throw err;
  }
}
