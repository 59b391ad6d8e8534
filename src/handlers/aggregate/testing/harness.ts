import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseConfig } from '../../../core/config.js';
import { silentLogger } from '../../../core/logger.js';
import { createMetricsRegistry, type Registry } from '../../../core/metrics.js';
import { TrellisResponse } from '../../../http/response.js';
import { createServicePool, type ServiceInput, serviceSchema } from '../../../http/upstream/index.js';
import type { ServicePool } from '../../../http/upstream/types.js';
import { createRequestContext } from '../../../runtime/context.js';
import { StoreSet } from '../../../runtime/stores.js';
import { aggregateHandler, aggregateSchema } from '../index.js';

/**
 * Test support for the aggregate handler: loopback origins with scripted answers and delays,
 * and a tiny server that runs the handler with a RequestContext, real service pools and a
 * fresh metrics registry. Not the gateway: routing is one pattern with `:params`.
 */

/** A scripted answer; `chunked` sends the body in two writes without a content-length. */
export type Reply = { status?: number; body?: unknown; delay?: number; raw?: string; chunked?: boolean };
export type OriginRoute = (req: IncomingMessage, url: URL) => Reply | Promise<Reply>;

export interface Origin {
  url: string;
  /** Paths with query seen, in arrival order. */
  hits: string[];
  /** Request headers seen, in arrival order. */
  headers: IncomingMessage['headers'][];
  /** Most requests in flight at once. */
  maxInFlight: number;
  close(): Promise<void>;
}

/** Starts an origin: `routes` maps a path prefix to its reply; unknown paths answer 404. */
export async function startOrigin(routes: Record<string, OriginRoute | Reply>): Promise<Origin> {
  const origin: Origin = { url: '', hits: [], headers: [], maxInFlight: 0, close: async () => {} };
  let inFlight = 0;
  const entries = Object.entries(routes).sort((a, b) => b[0].length - a[0].length);
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://origin');
    origin.hits.push(url.pathname + url.search);
    origin.headers.push(req.headers);
    inFlight++;
    origin.maxInFlight = Math.max(origin.maxInFlight, inFlight);
    for await (const _ of req) {
      // drain the body
    }
    const match = entries.find(([prefix]) => url.pathname.startsWith(prefix));
    const reply: Reply = match
      ? typeof match[1] === 'function'
        ? await match[1](req, url)
        : match[1]
      : { status: 404, body: { error: 'not found' } };
    const send = () => {
      inFlight--;
      if (res.destroyed) return;
      const text = reply.raw ?? JSON.stringify(reply.body ?? {});
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json' });
      if (reply.chunked) {
        res.write(text.slice(0, text.length >> 1));
        res.end(text.slice(text.length >> 1));
      } else res.end(text);
    };
    if (reply.delay) setTimeout(send, reply.delay);
    else send();
  });
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  origin.close = () => closeServer(server, sockets);
  return origin;
}

export interface Gateway {
  url: string;
  metrics: Registry;
  /** The service pools, by name (for their status). */
  pools: ReadonlyMap<string, ServicePool>;
  close(): Promise<void>;
}

export interface GatewayOptions {
  /** The route pattern giving params, like `/product/:id`. */
  route?: string;
  /** Claims to put in `ctx.state.jwt`. */
  jwt?: unknown;
  /** The file's `stores:` section. */
  stores?: Record<string, string>;
}

/**
 * Runs `aggregate:` options (YAML text, validated like the loader does) behind a loopback
 * server, with real service pools for `services`.
 */
export async function startAggregate(
  yaml: string,
  services: Record<string, ServiceInput>,
  options: GatewayOptions = {},
): Promise<Gateway> {
  const parsed = parseConfig(yaml, aggregateSchema, 'aggregate.yaml');
  const logger = silentLogger();
  const metrics = createMetricsRegistry();
  const storeSet = new StoreSet(logger);
  const pools = new Map<string, ServicePool>();
  for (const [name, def] of Object.entries(services)) {
    pools.set(name, createServicePool(name, serviceSchema.parse(def), { logger }));
  }
  const handler = await aggregateHandler.create(parsed, {
    logger,
    metrics,
    services: pools,
    baseDir: process.cwd(),
    stores: options.stores ?? {},
    shared: storeSet.view(options.stores ?? {}),
    routeName: 'test',
  });
  const pattern = (options.route ?? '/').split('/');
  const server = createServer(
    { ServerResponse: TrellisResponse as typeof ServerResponse },
    (req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://gw');
      const params: Record<string, string> = {};
      url.pathname.split('/').forEach((seg, i) => {
        const p = pattern[i];
        if (p?.startsWith(':')) params[p.slice(1)] = decodeURIComponent(seg);
      });
      const ctx = createRequestContext(req, res, { logger });
      ctx.clientIp = '127.0.0.1';
      ctx.path = url.pathname;
      ctx.query = url.search.slice(1);
      ctx.params = params;
      if (options.jwt !== undefined) ctx.state.jwt = options.jwt;
      Promise.resolve(handler(ctx)).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    },
  );
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    metrics,
    pools,
    close: async () => {
      await closeServer(server, sockets);
      await handler.close?.();
      await storeSet.close();
      await Promise.all([...pools.values()].map((p) => p.close()));
    },
  };
}

function closeServer(server: Server, sockets: Set<import('node:net').Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((r) => server.close(() => r()));
}
