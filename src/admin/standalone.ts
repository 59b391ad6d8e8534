import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { TrellisError } from '../core/errors.js';
import { createMetricsRegistry } from '../core/metrics.js';
import type { AdminAction, AdminPanel } from './panels.js';
import { type AdminServer, createAdminServer } from './server.js';

export interface AdminListenerOptions {
  host?: string;
  /** 0 picks a free port (read it from the result). */
  port: number;
  panels?: () => readonly AdminPanel[];
  actions?: () => readonly AdminAction[];
  /** Required for actions (16 characters or more). */
  token?: string;
  peers?: readonly string[];
  /** Served at /metrics (default: a registry with the process metrics). */
  registry?: Registry;
  /** /readyz answers 503 while this says false (default: always ready). */
  ready?: () => boolean;
}

export interface AdminListener extends AdminServer {
  readonly address: AddressInfo;
}

/**
 * An admin listener for an application that uses the library patterns (a leader-elected job, a
 * CQRS read side, a configuration client): its panels on the same dashboard as the gateway's,
 * by naming it in the gateway's `admin.peers`.
 */
export async function startAdminListener(options: AdminListenerOptions): Promise<AdminListener> {
  if (options.token !== undefined && options.token.length < 16) {
    throw new TrellisError(
      'TRELLIS_E_ADMIN_OPTIONS_INVALID',
      'the admin token is too short: use at least 16 random characters (openssl rand -hex 16)',
    );
  }
  const registry = options.registry ?? createMetricsRegistry();
  const server = createAdminServer({
    registry,
    ready: options.ready ?? (() => true),
    routes: () => ({ frontends: {} }),
    services: () => ({ services: [] }),
    config: () => ({ version: 0, source: 'application' }),
    panels: options.panels,
    actions: options.actions,
    token: options.token,
    peers: options.peers,
  });
  const address = await server.listen(options.host ?? '127.0.0.1', options.port).catch((err: unknown) => {
    throw new TrellisError('TRELLIS_E_LISTEN_FAILED', `cannot listen for the admin API: ${String(err)}`, {
      cause: err,
    });
  });
  return Object.assign(server, { address });
}
