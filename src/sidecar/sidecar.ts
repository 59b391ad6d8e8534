import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type ConfigClient, createConfigClient } from '../config/client.js';
import { messageOf, TrellisError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { createMetricsRegistry } from '../core/metrics.js';
import { fileProvider, readConfigText } from '../runtime/providers/file.js';
import { type Runtime, startRuntime } from '../runtime/runtime.js';
import { openKeyValueStore } from '../stores/kv/index.js';
import { openLeaseStore } from '../stores/lease/index.js';
import { openMessageQueue } from '../stores/queue/index.js';
import type { Store } from '../stores/types.js';
import { type PlatformApi, startPlatformApi } from './api/server.js';
import { type Deliveries, startDeliveries } from './deliveries.js';
import { sidecarPanel } from './panel.js';
import { type AppGate, parseSidecarConfig, sidecarRole } from './role.js';
import type { SidecarConfig } from './schema.js';
import { type AppExit, type AppState, AppSupervisor } from './supervisor.js';

export interface StartSidecarOptions {
  /** The sidecar YAML file; watched for changes (middlewares, limits) unless `watch: false`. */
  file: string;
  /** The app's command and arguments. */
  command: readonly string[];
  /** Overrides `admin:` from the file; `false` disables it. */
  admin?: { host: string; port: number } | false;
  logger?: Logger;
  registry?: Registry;
  watch?: boolean;
  env?: Record<string, string | undefined>;
  /** Aborting it during start-up stops the app and makes startSidecar reject. */
  signal?: AbortSignal;
}

/** A running sidecar and its app. */
export interface Sidecar {
  /** `inbound`, `admin` and `api` (the platform API on localhost). */
  readonly ports: Readonly<Record<string, number>>;
  readonly app: AppSupervisor;
  /** Resolves with the exit status once everything stopped (the app's status). */
  readonly done: Promise<number>;
  /**
   * The shutdown order: stop accepting inbound and drain in-flight inbound requests, stop
   * deliveries, SIGTERM the app and wait for it (SIGKILL after `app.stopTimeout`), close the
   * platform API and the stores. Resolves with the app's exit status.
   */
  stop(): Promise<number>;
}

/** The three building blocks behind the platform API (SQLite files beside the sidecar file by default). */
function storeUrls(config: SidecarConfig, baseDir: string, app: string) {
  const dir = join(baseDir, '.trellis-sidecar', app);
  const fallback = (name: string) => {
    mkdirSync(dir, { recursive: true });
    return `sqlite:${join(dir, `${name}.db`)}`;
  };
  return {
    state: config.state ?? fallback('state'),
    pubsub: config.pubsub.url ?? fallback('pubsub'),
    locks: config.locks ?? fallback('locks'),
  };
}

/**
 * Starts a sidecar in the order that makes start-up races impossible: the stores and the
 * platform API first (so the app's first call finds them), then the app with
 * TRELLIS_SIDECAR_URL, TRELLIS_SIDECAR_TOKEN and PORT, then, only once the app is healthy, the
 * inbound listener (the sidecar role on the shared runtime) and the deliveries.
 * Rejects with TRELLIS_E_SIDECAR_APP_UNHEALTHY when the app never becomes healthy.
 */
export async function startSidecar(options: StartSidecarOptions): Promise<Sidecar> {
  const logger = options.logger ?? silentLogger();
  const registry = options.registry ?? createMetricsRegistry();
  const file = isAbsolute(options.file) ? options.file : resolve(options.file);
  const baseDir = dirname(file);
  const config = parseSidecarConfig(readConfigText(file), file, options.env);
  const appName = config.app.name ?? basename(options.command[0] ?? 'app');
  const urls = storeUrls(config, baseDir, appName);

  const opened: Store[] = [];
  let configClient: ConfigClient | undefined;
  let api: PlatformApi | undefined;
  const closeAll = async () => {
    await api?.close().catch(() => undefined);
    await configClient?.close().catch(() => undefined);
    await Promise.allSettled(opened.map((s) => s.close()));
  };

  let supervisor: AppSupervisor | undefined;
  const gate: AppGate = {
    open: () => supervisor?.state === 'healthy',
    retryAfter: () => 1,
    whenOpen(timeoutMs) {
      const app = supervisor;
      if (app === undefined || app.state === 'healthy') return Promise.resolve(app !== undefined);
      return new Promise((resolve) => {
        const done = (ok: boolean) => {
          clearTimeout(timer);
          app.off('state', onState);
          resolve(ok);
        };
        const onState = (s: AppState) => {
          if (s === 'healthy') done(true);
          else if (s === 'stopping' || s === 'stopped') done(false);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        app.on('state', onState);
      });
    },
  };
  try {
    const state = await openKeyValueStore(urls.state);
    opened.push(state);
    const queue = await openMessageQueue(urls.pubsub);
    opened.push(queue);
    const locks = await openLeaseStore(urls.locks);
    opened.push(locks);
    if (config.config !== undefined) {
      const c = config.config;
      configClient = await createConfigClient({
        source: c.source,
        ...(c.token === undefined ? {} : { token: c.token }),
        ...(c.prefix === undefined ? {} : { prefix: c.prefix }),
        ...(c.label === undefined ? {} : { label: c.label }),
        ...(c.cacheFile === undefined ? {} : { cacheFile: resolve(baseDir, c.cacheFile) }),
        ...(options.env === undefined ? {} : { env: options.env }),
        logger: logger.child({ part: 'config' }),
      });
    }
    const token = randomBytes(32).toString('base64url');
    api = await startPlatformApi(
      {
        token,
        state,
        queue,
        locks,
        config: configClient,
        secrets: config.secrets,
        instanceId: `${appName}@${hostname()}:${process.pid}`,
        storeTimeoutMs: config.api.storeTimeout,
        appState: () => supervisor?.state ?? 'starting',
        logger: logger.child({ part: 'api' }),
        registry,
        ...(options.env === undefined ? {} : { env: options.env }),
      },
      config.api.host,
      config.api.port,
    );
    logger.info({ url: api.url }, 'platform API listening');

    supervisor = new AppSupervisor({
      command: options.command,
      app: { ...config.app, name: appName },
      env: { TRELLIS_SIDECAR_URL: api.url, TRELLIS_SIDECAR_TOKEN: token, PORT: String(config.app.port) },
      logger,
    });
    appMetrics(supervisor, registry);
    const starting = supervisor;
    const onAbort = () => void starting.stop();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    await supervisor.start().finally(() => options.signal?.removeEventListener('abort', onAbort));
    if (options.signal?.aborted)
      throw new TrellisError('TRELLIS_E_SIDECAR_APP_UNHEALTHY', 'stopped by a signal during start-up');
    const app = supervisor;

    let runtime: Runtime<SidecarConfig> | undefined;
    let deliveries: Deliveries | undefined;
    if (app.state !== 'stopped') {
      runtime = await startRuntime(sidecarRole(gate), {
        provider: fileProvider(file, { watch: options.watch !== false }),
        admin: options.admin,
        panels: () => [sidecarPanel(app, urls, config.pubsub.subscriptions)],
        logger,
        registry,
        sighup: true,
        watchReferenced: options.watch !== false,
        env: options.env,
      }).catch(async (err: unknown) => {
        await app.stop();
        throw err;
      });
      deliveries = await startDeliveries(
        queue,
        config.pubsub.subscriptions,
        { name: appName, port: config.app.port },
        gate,
        logger,
        registry,
      );
    }

    let stopping: Promise<number> | undefined;
    const shutdown = (exitOf: () => Promise<AppExit>): Promise<number> => {
      stopping ??= (async () => {
        if (runtime !== undefined) {
          logger.info({ drainTimeout: runtime.drainTimeout }, 'draining inbound requests');
          await runtime
            .stop(runtime.drainTimeout)
            .catch((err: unknown) => logger.error({ err: messageOf(err) }, 'inbound drain failed'));
        }
        await deliveries?.stop();
        const exit = await exitOf();
        logger.info({ app: appName, code: exit.code, reason: exit.reason }, 'the app stopped');
        await closeAll();
        return exit.code;
      })();
      return stopping;
    };
    // The app ending for good (a finished job, a crash loop) takes the sidecar down with it.
    void app.done.then(() => shutdown(() => app.done));
    const ports: Record<string, number> = { api: api.port, ...(runtime ? runtime.ports : {}) };
    return {
      ports,
      app,
      get done() {
        return app.done.then(() => shutdown(() => app.done));
      },
      stop: () => shutdown(() => app.stop()),
    };
  } catch (err) {
    supervisor?.killNow();
    await closeAll();
    throw err;
  }
}

function appMetrics(app: AppSupervisor, registry: Registry): void {
  const states: AppState[] = ['starting', 'healthy', 'unhealthy', 'restarting', 'stopping', 'stopped'];
  const gauge = new Gauge({
    name: 'trellis_sidecar_app_state',
    help: "1 for the app's current state (starting, healthy, unhealthy, restarting, stopping, stopped)",
    labelNames: ['state'] as const,
    registers: [registry],
  });
  const restarts = new Counter({
    name: 'trellis_sidecar_app_restarts_total',
    help: 'Restarts of the app after it exited',
    registers: [registry],
  });
  const set = (s: AppState) => {
    for (const x of states) gauge.set({ state: x }, x === s ? 1 : 0);
  };
  set(app.state);
  app.on('state', (s) => {
    set(s);
    if (s === 'restarting') restarts.inc();
  });
}
