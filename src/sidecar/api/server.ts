import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { ConfigClient } from '../../config/client.js';
import { resolveSecrets } from '../../config/secrets.js';
import { TrellisError } from '../../core/errors.js';
import { sendProblem } from '../../http/problem.js';
import type { KeyValueStore, LeaseStore, MessageQueue } from '../../stores/types.js';
import { OPENAPI } from './openapi.js';
import { badRequest, readBody, readJson, sendError, sendJson, withDeadline } from './respond.js';
import { bulkGet, bulkPut } from './state-bulk.js';

/**
 * The platform API on localhost: state, pub/sub, locks, configuration and secrets over HTTP +
 * JSON, for an app in any language. Every call but `/v1/openapi.json` needs the per-instance
 * bearer token the app finds in TRELLIS_SIDECAR_TOKEN. Routes are few and fixed, so they are
 * matched by hand (a router library would add a dependency for six prefixes).
 */

export interface PlatformApiDeps {
  token: string;
  state: KeyValueStore;
  queue: MessageQueue;
  locks: LeaseStore;
  config: ConfigClient | undefined;
  /** Secret references by name, resolved on each read (never logged). */
  secrets: Record<string, string>;
  /** Holder name of locks taken without one (this sidecar instance). */
  instanceId: string;
  storeTimeoutMs: number;
  /** The app's state, for /v1/healthz. */
  appState: () => string;
  logger: Logger;
  registry: Registry;
  env?: Record<string, string | undefined>;
}

/** A running platform API. */
export interface PlatformApi {
  readonly port: number;
  readonly url: string;
  /** Closes the listener and every open watch stream. */
  close(): Promise<void>;
}

const KEY_RE = /^[^\u0000-\u001f]{1,1024}$/;
const NAME_RE = /^[A-Za-z0-9_.:-]{1,200}$/;

/** Starts the platform API on host:port (0: a free port). */
export async function startPlatformApi(
  deps: PlatformApiDeps,
  host: string,
  port: number,
): Promise<PlatformApi> {
  const calls = new Counter({
    name: 'trellis_sidecar_api_calls_total',
    help: 'Platform API calls by kind and outcome',
    labelNames: ['kind', 'status'] as const,
    registers: [deps.registry],
  });
  const expected = Buffer.from(`Bearer ${deps.token}`);
  const authorized = (req: IncomingMessage) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  // One labelled child per (kind, status), so a call does not hash its labels again.
  const counted = new Map<string, Counter.Internal>();
  const count = (kind: string, status: number) => {
    const id = `${kind} ${status}`;
    let child = counted.get(id);
    if (child === undefined) {
      child = calls.labels(kind, String(status));
      counted.set(id, child);
    }
    child.inc();
  };
  const watchers = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    // The path by hand, not `new URL` (a full WHATWG parse per call): only the segments and,
    // for two routes, the query are needed.
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const [, v1, kind = '', ...rest] = (q === -1 ? raw : raw.slice(0, q)).split('/');
    res.once('finish', () => count(kind, res.statusCode));
    if (v1 !== 'v1') return notFound(res);
    if (kind === 'openapi.json' && req.method === 'GET') return sendJson(res, 200, OPENAPI);
    if (!authorized(req)) {
      return sendProblem(res, {
        status: 401,
        code: 'TRELLIS_E_SIDECAR_API_UNAUTHORIZED',
        detail: 'send Authorization: Bearer $TRELLIS_SIDECAR_TOKEN',
        headers: { 'www-authenticate': 'Bearer' },
      });
    }
    let name: string;
    try {
      name =
        rest.length === 1 ? decodeURIComponent(rest[0]!) : rest.map((s) => decodeURIComponent(s)).join('/');
    } catch {
      return sendError(res, badRequest('the path has a malformed %-escape'));
    }
    const query = new LazyQuery(q === -1 ? '' : raw.slice(q + 1));
    const op = route(kind, req.method ?? 'GET', name, query, req, res);
    if (op === undefined) return notFound(res);
    op.catch((err: unknown) => sendError(res, err));
  });

  const t = deps.storeTimeoutMs;
  function route(
    kind: string | undefined,
    method: string,
    name: string,
    query: LazyQuery,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> | undefined {
    switch (kind) {
      case 'healthz':
        return method === 'GET' ? Promise.resolve(sendJson(res, 200, { app: deps.appState() })) : undefined;
      case 'state':
        // POST is not a single-key method, so these two names stay usable as keys.
        if (method === 'POST' && name === 'bulk') return bulkGet(deps.state, t, req, res);
        if (method === 'POST' && name === 'bulk-put') return bulkPut(deps.state, t, req, res);
        if (!KEY_RE.test(name))
          return Promise.reject(badRequest('a state key is 1 to 1024 characters: /v1/state/{key}'));
        return state(method, name, req, res);
      case 'publish':
        if (method !== 'POST') return undefined;
        return publish(name, req, res);
      case 'locks':
        if (!NAME_RE.test(name))
          return Promise.reject(badRequest('a lock name is letters, digits, _ . : - (at most 200)'));
        return locks(method, name, query, req, res);
      case 'config':
        if (method !== 'GET') return undefined;
        return config(name, query, req, res);
      case 'secrets':
        if (method !== 'GET') return undefined;
        return secret(name, res);
      default:
        return undefined;
    }
  }

  async function state(
    method: string,
    key: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    if (method === 'GET') {
      const entry = await withDeadline(() => deps.state.get(key), t, 'state get');
      if (entry === undefined) return notFound(res, `no state under ${JSON.stringify(key)}`);
      res.writeHead(200, {
        'content-type': 'application/json',
        etag: `"${entry.revision}"`,
        'content-length': Buffer.byteLength(entry.value),
      });
      res.end(entry.value);
      return;
    }
    const expectedRevision = preconditionOf(req);
    if (method === 'PUT') {
      const body = await readBody(req);
      try {
        JSON.parse(body);
      } catch {
        throw badRequest('a state value is a JSON document');
      }
      const entry = await withDeadline(
        () => deps.state.put(key, body, expectedRevision === undefined ? {} : { expectedRevision }),
        t,
        'state put',
      );
      return sendJson(res, 200, { key, revision: entry.revision }, { etag: `"${entry.revision}"` });
    }
    if (method === 'DELETE') {
      const deleted = await withDeadline(
        () => deps.state.delete(key, expectedRevision === undefined ? {} : { expectedRevision }),
        t,
        'state delete',
      );
      if (!deleted) return notFound(res, `no state under ${JSON.stringify(key)}`);
      res.writeHead(204).end();
      return;
    }
    return notFound(res);
  }

  async function publish(topic: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const payload = await readBody(req);
    const id = header(req, 'idempotency-key');
    const key = header(req, 'x-trellis-key');
    const result = await withDeadline(
      () => deps.queue.publish(topic, payload, { ...(id ? { id } : {}), ...(key ? { key } : {}) }),
      t,
      'publish',
    );
    return sendJson(res, 202, { id: result.id, duplicate: result.duplicate });
  }

  async function locks(
    method: string,
    name: string,
    query: LazyQuery,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    if (method === 'GET') {
      const lease = await withDeadline(() => deps.locks.read(name), t, 'lock read');
      return lease === undefined ? notFound(res, `lock ${name} is free`) : sendJson(res, 200, lease);
    }
    if (method === 'DELETE') {
      const holder = query.get('holder') ?? deps.instanceId;
      const token = Number(query.get('token'));
      if (!Number.isSafeInteger(token) || token <= 0)
        throw badRequest('release with ?token=<the fencing token>');
      const released = await withDeadline(
        () => deps.locks.release({ name, holder, token }),
        t,
        'lock release',
      );
      if (!released) return notFound(res, `lock ${name} is not held with token ${token}`);
      res.writeHead(204).end();
      return;
    }
    const body = (await readJson(req)) as { holder?: unknown; ttlMs?: unknown; token?: unknown };
    const holder = body.holder === undefined ? deps.instanceId : body.holder;
    const ttlMs = body.ttlMs === undefined ? 10_000 : body.ttlMs;
    if (typeof holder !== 'string' || holder === '') throw badRequest('holder is a non-empty string');
    if (typeof ttlMs !== 'number' || !Number.isInteger(ttlMs) || ttlMs < 100)
      throw badRequest('ttlMs is a whole number of milliseconds, at least 100');
    if (method === 'POST') {
      const lease = await withDeadline(() => deps.locks.acquire(name, holder, ttlMs), t, 'lock acquire');
      if (lease === undefined) {
        const current = await withDeadline(() => deps.locks.read(name), t, 'lock read').catch(
          () => undefined,
        );
        return sendProblem(res, {
          status: 409,
          code: 'TRELLIS_E_SIDECAR_LOCK_HELD',
          detail: `lock ${name} is held by another holder: retry later`,
          ...(current ? { extensions: { holder: current.holder, expiresAt: current.expiresAt } } : {}),
        });
      }
      return sendJson(res, 200, lease);
    }
    if (method === 'PUT') {
      const token = body.token;
      if (typeof token !== 'number' || !Number.isSafeInteger(token))
        throw badRequest('renew with { "token": <the fencing token> }');
      const lease = await withDeadline(
        () => deps.locks.renew({ name, holder, token }, ttlMs),
        t,
        'lock renew',
      );
      return sendJson(res, 200, lease);
    }
    return notFound(res);
  }

  async function config(
    key: string,
    query: LazyQuery,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const client = deps.config;
    if (client === undefined) {
      throw new TrellisError('TRELLIS_E_SIDECAR_API_BAD_REQUEST', 'no config: section in the sidecar file', {
        details: { status: 404 },
      });
    }
    const snapshot = () => {
      const doc = client.document(key);
      const health = client.health();
      return {
        key,
        value: doc === undefined ? null : client.get(key),
        revision: doc?.revision ?? null,
        source: health.source,
        ...(health.ok ? {} : { stale: true, ...(health.error ? { error: health.error } : {}) }),
      };
    };
    if (query.get('watch') === null && !(req.headers.accept ?? '').includes('text/event-stream')) {
      const body = snapshot();
      if (body.revision === null) return notFound(res, `no configuration document ${JSON.stringify(key)}`);
      return sendJson(res, 200, body, { 'x-trellis-config-source': body.source });
    }
    // Server-sent events: the current document, then one event per change of this key.
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(`event: document\ndata: ${JSON.stringify(snapshot())}\n\n`);
    watchers.add(res);
    const unsubscribe = client.subscribe((change) => {
      if (change.key !== key) return;
      res.write(`event: document\nid: ${change.revision}\ndata: ${JSON.stringify(snapshot())}\n\n`);
    });
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    res.once('close', () => {
      clearInterval(keepAlive);
      unsubscribe();
      watchers.delete(res);
    });
  }

  async function secret(name: string, res: ServerResponse): Promise<void> {
    const ref = deps.secrets[name];
    if (ref === undefined)
      return notFound(res, `no secret named ${JSON.stringify(name)} in the sidecar file`);
    const value = resolveSecrets(ref, deps.env) as string;
    return sendJson(res, 200, { name, value }, { 'cache-control': 'no-store' });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    async close() {
      for (const w of watchers) w.end();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}

/** The query string, parsed only when a route asks for a parameter. */
class LazyQuery {
  #params: URLSearchParams | undefined;
  constructor(private readonly text: string) {}
  get(name: string): string | null {
    if (this.text === '') return null;
    this.#params ??= new URLSearchParams(this.text);
    return this.#params.get(name);
  }
}

/** If-Match: "<revision>" (compare-and-set); If-None-Match: * (create only). */
function preconditionOf(req: IncomingMessage): number | undefined {
  if (req.headers['if-none-match'] === '*') return 0;
  const ifMatch = req.headers['if-match'];
  if (ifMatch === undefined) return undefined;
  const m = /^\s*(?:W\/)?"?(\d+)"?\s*$/.exec(ifMatch);
  if (!m) throw badRequest('If-Match takes the ETag of a GET, like "12"');
  return Number(m[1]);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function notFound(res: ServerResponse, detail = 'no such platform API endpoint: see /v1/openapi.json'): void {
  sendProblem(res, { status: 404, code: 'TRELLIS_E_SIDECAR_API_NOT_FOUND', detail });
}
