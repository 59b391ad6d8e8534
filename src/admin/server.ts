import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { isTrellisError } from '../core/errors.js';
import { sendProblem } from '../http/problem.js';
import { isDashboardPath, serveDashboard } from './dashboard/serve.js';
import { localPanels, peerPanels, runAction } from './extension.js';
import type { AdminAction, AdminPanel, PanelView } from './panels.js';

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
  /** The running parts' dashboard panels (strangler routes, pipeline stages, host workloads…). */
  panels?(): readonly AdminPanel[];
  /** Operator actions, run by `POST /admin/actions/<name>` with `token`. */
  actions?(): readonly AdminAction[];
  /** `admin.token`: without it, actions are refused. */
  token?: string | undefined;
  /** `admin.peers`: other processes' admin URLs whose panels `/admin/panels` shows too. */
  peers?: readonly string[] | undefined;
  /** This process's panels already viewed, when they live elsewhere (a cluster asks a worker); else `panels` are viewed here. */
  panelViews?(): Promise<PanelView[]>;
}

/** The views a runtime serves on its admin API (a cluster's primary asks a worker for them). */
export type AdminViews = Pick<AdminSource, 'routes' | 'services' | 'config' | 'panels' | 'actions'>;

const ACTIONS_PREFIX = '/admin/actions/';

export interface AdminServer {
  readonly server: Server;
  listen(host: string, port: number): Promise<AddressInfo>;
  close(): Promise<void>;
}

/**
 * The admin listener: /healthz, /readyz, /metrics, /admin/routes, /admin/services, /admin/config,
 * /admin/panels, /admin/actions (POST /admin/actions/<name> with the token), the dashboard at /.
 */
export function createAdminServer(source: AdminSource): AdminServer {
  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body, null, 2);
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(text);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const [path, query = ''] = (req.url ?? '/').split('?') as [string, string?];
    if (path.startsWith(ACTIONS_PREFIX) && req.method === 'POST') {
      try {
        const result = await runAction(
          req,
          decodeURIComponent(path.slice(ACTIONS_PREFIX.length)),
          source.actions?.() ?? [],
          source.token,
        );
        return json(res, 200, { ok: true, result: result ?? null });
      } catch (err) {
        if (!isTrellisError(err)) throw err;
        return sendProblem(res, {
          status: err.status ?? 400,
          code: err.code,
          detail: err.message,
          ...(err.status === 401 ? { headers: { 'www-authenticate': 'Bearer realm="trellis-admin"' } } : {}),
        });
      }
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendProblem(res, {
        status: 405,
        code: 'TRELLIS_E_ADMIN_METHOD_NOT_ALLOWED',
        detail: 'the admin API is read-only but for POST /admin/actions/<name>: use GET',
        headers: { allow: path.startsWith(ACTIONS_PREFIX) ? 'POST' : 'GET, HEAD' },
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
      case '/admin/panels': {
        const local = source.panelViews
          ? await source.panelViews()
          : await localPanels(source.panels?.() ?? [], 'local');
        // `?local=1` is how a peer asks: only this process's panels, so peers never loop.
        const peers = new URLSearchParams(query).has('local') ? [] : (source.peers ?? []);
        if (peers.length === 0) return json(res, 200, { panels: local });
        const remote = await peerPanels(peers);
        return json(res, 200, { panels: [...local, ...remote.panels], peers: remote.peers });
      }
      case '/admin/actions':
        return json(res, 200, {
          enabled: source.token !== undefined && source.token !== '',
          actions: (source.actions?.() ?? []).map((a) => ({ name: a.name, describe: a.describe })),
        });
      default:
        sendProblem(res, {
          status: 404,
          code: 'TRELLIS_E_ADMIN_NOT_FOUND',
          detail:
            'try /healthz, /readyz, /metrics, /admin/routes, /admin/services, /admin/config, /admin/panels or /admin/actions',
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
