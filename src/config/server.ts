import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from 'find-my-way';
import type { Logger } from 'pino';
import { isTrellisError, messageOf, TrellisError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { Counter, createMetricsRegistry, Gauge, type Registry } from '../core/metrics.js';
import { sendProblem } from '../http/problem.js';
import type { ConfigApi } from './api.js';
import { type Access, authorize, type TokenPolicy } from './auth.js';
import { checkConfigPrefix, checkLabel, DEFAULT_LABEL, type DocumentFormat } from './document.js';
import { writeSse } from './sse.js';
import { WatchHub } from './watch-hub.js';

export interface ConfigServerOptions extends TokenPolicy {
  /** The store the API serves (a ConfigRepository). */
  api: ConfigApi;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Largest document accepted (default 1 MiB). */
  maxBodyBytes?: number;
  /** SSE comment sent this often so proxies keep idle watch streams open (default 15 s). */
  heartbeatMs?: number;
  logger?: Logger;
  /** Prometheus registry for the server's metrics, served at GET /metrics (default: a new one). */
  registry?: Registry;
}

export interface ConfigServer {
  /** `http://host:port`. */
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

type Params = Record<string, string | undefined>;
type Query = Record<string, string>;
type Route = (req: IncomingMessage, res: ServerResponse, params: Params, query: Query) => Promise<void>;

/**
 * `trellis config serve`: the configuration store's HTTP API. Reads need the read (or write)
 * token, writes the write token. Errors are RFC 9457 problem details. Document contents are
 * never logged (they may hold secret references; values never reach the server).
 */
export async function startConfigServer(options: ConfigServerOptions): Promise<ConfigServer> {
  const api = options.api;
  const log = options.logger ?? silentLogger();
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const router = Router();
  const streams = new Set<ServerResponse>();
  const hub = new WatchHub(api);
  const registry = options.registry ?? createMetricsRegistry();
  const writes = new Counter({
    name: 'trellis_config_writes_total',
    help: 'Writes to the config store (set, delete, rollback) by outcome',
    labelNames: ['outcome'],
    registers: [registry],
  });
  new Gauge({
    name: 'trellis_config_watch_streams',
    help: 'Open watch (SSE) streams',
    registers: [registry],
    collect() {
      this.set(streams.size);
    },
  });

  const on = (method: 'GET' | 'PUT' | 'DELETE' | 'POST', path: string, access: Access, route: Route) => {
    router.on(method, path, (req, res, params, _store, query) => {
      const verdict = authorize(req, access, options);
      if (verdict === 401) {
        sendProblem(res, {
          status: 401,
          code: 'TRELLIS_E_CONFIG_UNAUTHORIZED',
          detail: `this ${access} needs a token: send Authorization: Bearer <token>`,
          headers: { 'www-authenticate': 'Bearer' },
        });
        return;
      }
      if (verdict === 403) {
        sendProblem(res, {
          status: 403,
          code: 'TRELLIS_E_CONFIG_FORBIDDEN',
          detail: `the token given does not allow ${access}s`,
        });
        return;
      }
      route(req, res, params, query).then(
        () => {
          if (access === 'write' && res.statusCode < 300) writes.inc({ outcome: 'applied' });
        },
        (err: unknown) => fail(res, err, access === 'write'),
      );
    });
  };

  const fail = (res: ServerResponse, err: unknown, write = false) => {
    if (write) writes.inc({ outcome: outcomeOf(err) });
    if (isTrellisError(err)) {
      const status = err.status ?? (err.code === 'TRELLIS_E_STORE_UNAVAILABLE' ? 503 : 500);
      if (status >= 500) log.error({ code: err.code, err: err.message }, 'config request failed');
      sendProblem(res, {
        status,
        code: err.code,
        detail: err.message,
        ...(err.details ? { extensions: err.details } : {}),
      });
      return;
    }
    log.error({ err: messageOf(err) }, 'config request failed unexpectedly');
    sendProblem(res, {
      status: 500,
      code: 'TRELLIS_E_CONFIG_INTERNAL',
      detail: 'the config server failed: see its log',
    });
  };

  const writeOptions = (req: IncomingMessage, query: Query) => ({
    label: query.label || undefined,
    expectedRevision: expectedRevision(req),
    author: header(req, 'x-trellis-author'),
    message: header(req, 'x-trellis-message'),
  });

  on('GET', '/metrics', 'read', async (_req, res) => {
    const text = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
    res.end(text);
  });

  on('GET', '/healthz', 'read', async (_req, res) => {
    const health = await (api as { store?: { health(): Promise<unknown> } }).store?.health();
    json(res, 200, { ok: true, store: health });
  });

  on('GET', '/v1/config', 'read', async (_req, res, _p, query) => {
    json(res, 200, await api.list(query.prefix ?? '', query.label || undefined));
  });

  on('GET', '/v1/config/*', 'read', async (_req, res, params, query) => {
    const key = params['*']!;
    const doc = await api.get(key, query.label || undefined);
    if (!doc) return notFound(res, key);
    json(res, 200, doc, { etag: `"${doc.revision}"` });
  });

  on('PUT', '/v1/config/*', 'write', async (req, res, params, query) => {
    const key = params['*']!;
    const content = await readBody(req, maxBody);
    const format = formatOf(req, query);
    const opts = writeOptions(req, query);
    const doc = await api.set(key, content, { ...opts, format });
    log.info(
      { key, label: doc.label, revision: doc.revision, author: doc.author },
      'config document written',
    );
    json(res, opts.expectedRevision === 0 ? 201 : 200, doc, { etag: `"${doc.revision}"` });
  });

  on('DELETE', '/v1/config/*', 'write', async (req, res, params, query) => {
    const key = params['*']!;
    const opts = writeOptions(req, query);
    if (!(await api.delete(key, opts))) return notFound(res, key);
    log.info({ key, label: opts.label, author: opts.author }, 'config document deleted');
    res.writeHead(204).end();
  });

  on('GET', '/v1/history/*', 'read', async (_req, res, params, query) => {
    json(res, 200, { entries: await api.history(params['*']!, query.label || undefined) });
  });

  on('POST', '/v1/rollback/*', 'write', async (req, res, params, query) => {
    const key = params['*']!;
    const revision = Number(query.revision);
    if (!Number.isSafeInteger(revision) || revision <= 0) {
      throw new TrellisError(
        'TRELLIS_E_CONFIG_REQUEST_INVALID',
        'give the revision to roll back to: ?revision=N',
        {
          status: 400,
        },
      );
    }
    const doc = await api.rollback(key, revision, writeOptions(req, query));
    log.info(
      { key, label: doc.label, revision: doc.revision, to: revision, author: doc.author },
      'config rolled back',
    );
    json(res, 200, doc, { etag: `"${doc.revision}"` });
  });

  on('GET', '/v1/watch', 'read', async (req, res, _p, query) => {
    const from = req.headers['last-event-id'] ?? query.fromRevision;
    const fromRevision = from === undefined || from === '' ? undefined : Number(from);
    if (fromRevision !== undefined && (!Number.isSafeInteger(fromRevision) || fromRevision < 0)) {
      throw new TrellisError(
        'TRELLIS_E_CONFIG_REQUEST_INVALID',
        'Last-Event-ID / fromRevision must be a revision number',
        {
          status: 400,
        },
      );
    }
    const prefix = query.prefix ?? '';
    const label = query.label || DEFAULT_LABEL;
    checkConfigPrefix(prefix);
    checkLabel(label);
    const ac = new AbortController();
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    streams.add(res);
    const heartbeat = setInterval(() => res.write(': ping\n\n'), heartbeatMs);
    const stop = () => {
      clearInterval(heartbeat);
      streams.delete(res);
      ac.abort();
    };
    res.on('close', stop);
    res.write(`: watching ${prefix} from ${fromRevision ?? 'now'}\n\n`);
    try {
      for await (const { change, data } of hub.watch(label, prefix, fromRevision, ac.signal)) {
        writeSse(res, { id: String(change.revision), event: change.type, data });
      }
    } catch (err) {
      if (!ac.signal.aborted) {
        const gap = isTrellisError(err, 'TRELLIS_E_KV_WATCH_GAP');
        writeSse(res, {
          event: gap ? 'gap' : 'error',
          data: JSON.stringify({
            code: isTrellisError(err) ? err.code : 'TRELLIS_E_CONFIG_INTERNAL',
            detail: messageOf(err),
          }),
        });
      }
    } finally {
      stop();
      res.end();
    }
  });

  on('GET', '/v1/schemas', 'read', async (_req, res) => {
    json(res, 200, { schemas: await api.listSchemas() });
  });

  on('PUT', '/v1/schemas/*', 'write', async (req, res, params, query) => {
    const text = await readBody(req, maxBody);
    const validator = query.validator || undefined;
    let schema: unknown;
    try {
      // With ?validator=NAME the body may be empty: the validator alone is bound.
      schema = text.trim() === '' && validator !== undefined ? undefined : JSON.parse(text);
    } catch (err) {
      throw new TrellisError('TRELLIS_E_CONFIG_SCHEMA_INVALID', `the schema is not JSON: ${messageOf(err)}`, {
        status: 400,
      });
    }
    const binding = await api.setSchema(params['*']!, schema, {
      author: header(req, 'x-trellis-author'),
      ...(validator === undefined ? {} : { validator }),
    });
    log.info({ prefix: binding.prefix, author: binding.author, validator }, 'config schema bound');
    json(res, 200, binding);
  });

  on('DELETE', '/v1/schemas/*', 'write', async (_req, res, params) => {
    if (!(await api.deleteSchema(params['*']!))) return notFound(res, `schema ${params['*']}`);
    res.writeHead(204).end();
  });

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const found = router.find(req.method as 'GET', path);
    if (!found) {
      sendProblem(res, {
        status: 404,
        code: 'TRELLIS_E_CONFIG_NOT_FOUND',
        detail: `no API at ${req.method} ${path}`,
      });
      return;
    }
    const query = Object.fromEntries(new URL(req.url ?? '/', 'http://x').searchParams);
    found.handler(req, res, found.params, found.store, query);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    server,
    close: async () => {
      hub.close();
      for (const s of streams) s.end();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function notFound(res: ServerResponse, what: string): void {
  sendProblem(res, { status: 404, code: 'TRELLIS_E_CONFIG_NOT_FOUND', detail: `${what} does not exist` });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (typeof v !== 'string' || v === '') return undefined;
  // Clients percent-encode these so any text survives HTTP's Latin-1 headers.
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** If-Match "N" → N; If-None-Match * → 0 (create only); neither → undefined. */
function expectedRevision(req: IncomingMessage): number | undefined {
  if (req.headers['if-none-match'] === '*') return 0;
  const raw = req.headers['if-match'];
  if (raw === undefined) return undefined;
  const n = Number(raw.replace(/^W\//, '').replace(/"/g, '').trim());
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new TrellisError(
      'TRELLIS_E_CONFIG_REQUEST_INVALID',
      `If-Match must be a revision like "12", got ${raw}`,
      {
        status: 400,
      },
    );
  }
  return n;
}

function formatOf(req: IncomingMessage, query: Query): DocumentFormat | undefined {
  if (query.format === 'json' || query.format === 'yaml') return query.format;
  const type = req.headers['content-type'] ?? '';
  if (type.includes('json')) return 'json';
  if (type.includes('yaml')) return 'yaml';
  return undefined;
}

async function readBody(req: IncomingMessage, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) {
      throw new TrellisError(
        'TRELLIS_E_CONFIG_TOO_LARGE',
        `the document is larger than ${max} bytes: keep documents small`,
        {
          status: 413,
        },
      );
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** How a refused write is counted: `refused` (invalid), `conflict` (stale revision), `error`. */
function outcomeOf(err: unknown): string {
  if (isTrellisError(err, 'TRELLIS_E_CONFIG_REVISION_MISMATCH')) return 'conflict';
  if (isTrellisError(err) && err.status !== undefined && err.status < 500) return 'refused';
  return 'error';
}
