import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { sendProblem } from '../http/problem.js';
import { isDashboardPath, serveDashboard } from './dashboard/serve.js';

/** What the admin API shows; the gateway (or sidecar, ambassador) provides it. */
export interface AdminSource {
  registry: Registry;
  /** False while starting, draining, or when a listener is not accepting: /readyz answers 503. */
  ready(): boolean;
  /** What /readyz shows beside its status: each listener, each shared store's health (a cluster: its worker counts). */
  readiness?(): Promise<Record<string, unknown>> | Record<string, unknown>;
  /**
   * What the running parts report on their dependencies (a key service, a shared store). A
   * `degraded` or `unavailable` check is shown but keeps /readyz at 200: the process still
   * serves, and taking every instance out of rotation over a shared outage would make it total.
   */
  checks?(): Record<string, { status: string; detail?: string }>;
  /** The /metrics text when it is not `registry`'s alone (a cluster merges its workers'). */
  metrics?(): Promise<string>;
  /** The views may answer later (a cluster asks a worker). */
  routes(): unknown;
  services(): unknown;
  /** Active version, last reload result and the configuration with secrets masked. */
  config(): unknown;
}

export interface AdminServer {
  readonly server: Server;
  listen(host: string, port: number): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** The admin listener: /healthz, /readyz, /metrics, /admin/routes, /admin/services, /admin/config, the dashboard at /. */
export function createAdminServer(source: AdminSource): AdminServer {
  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body, null, 2);
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(text);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendProblem(res, {
        status: 405,
        code: 'TRELLIS_E_ADMIN_METHOD_NOT_ALLOWED',
        detail: 'the admin API is read-only: use GET',
        headers: { allow: 'GET, HEAD' },
      });
      return;
    }
    if (isDashboardPath(path)) return serveDashboard(path, res);
    switch (path) {
      case '/healthz':
        return json(res, 200, { status: 'ok' });
      case '/readyz': {
        const ready = source.ready();
        const detail = (await source.readiness?.()) ?? {};
        const checks = source.checks?.() ?? {};
        const degraded = Object.values(checks).some((c) => c.status !== 'ok');
        return json(res, ready ? 200 : 503, {
          status: !ready ? 'not ready' : degraded ? 'degraded' : 'ready',
          ...detail,
          ...(Object.keys(checks).length > 0 ? { checks } : {}),
        });
      }
      case '/metrics': {
        const text = await (source.metrics ? source.metrics() : source.registry.metrics());
        res.writeHead(200, { 'content-type': source.registry.contentType });
        res.end(text);
        return;
      }
      case '/admin/routes':
        return json(res, 200, await source.routes());
      case '/admin/services':
        return json(res, 200, await source.services());
      case '/admin/config':
        return json(res, 200, await source.config());
      default:
        sendProblem(res, {
          status: 404,
          code: 'TRELLIS_E_ADMIN_NOT_FOUND',
          detail: 'try /healthz, /readyz, /metrics, /admin/routes, /admin/services or /admin/config',
        });
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      sendProblem(res, { status: 500, code: 'TRELLIS_E_INTERNAL', detail: 'the admin API failed' });
    });
  });
  return {
    server,
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
