import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AggregatorRegistry, Counter, Gauge, type Registry } from 'prom-client';
import type { PanelView } from '../admin/panels.js';
import { type AdminServer, createAdminServer } from '../admin/server.js';
import { ConfigError } from '../core/config.js';
import { messageOf, TrellisError } from '../core/errors.js';
import { logMetrics } from '../core/logger.js';
import { createMetricsRegistry } from '../core/metrics.js';
import {
  type Gateway,
  gatewayReferencedFiles,
  parseGatewayConfig,
  type ReloadResult,
} from '../gateway/gateway.js';
import { adminListen } from './admin-listen.js';
import { runtimeMetrics } from './metrics.js';
import type { ConfigProvider, ConfigSink } from './providers/types.js';
import { watchFiles } from './providers/watch.js';
import type { FromWorker, MetricsReply, PrepareReply, ToWorker, WorkerRequest } from './worker-messages.js';

/**
 * `workers: N`: one gateway in N processes behind the same listeners, with node:cluster.
 *
 * Why cluster and not SO_REUSEPORT: Node 20's `net` has no `reusePort` (it arrived in 22.12 /
 * 23.1), and cluster's round-robin hands each new connection to the next worker, so a busy
 * worker does not collect most connections the way kernel accept() races tend to.
 *
 * The primary serves nothing itself. It owns what must exist once: the configuration provider
 * (a watched file, a followed store document; SIGHUP), the admin listener (metrics of every worker
 * merged with prom-client's AggregatorRegistry, health, the views of one worker), and the
 * workers' lives: a worker that dies is replaced with the committed configuration; the others
 * and their connections are untouched.
 *
 * Reloads are two-phase so that no worker serves an older version longer than the reload
 * takes: every worker prepares (validates, compiles, binds new listeners); if all succeed every
 * worker commits (a synchronous swap), otherwise every prepared worker aborts and the reload is
 * rejected as a whole.
 */

/** A running gateway cluster: the parts of Gateway that a cluster can offer. */
export type GatewayCluster = Pick<
  Gateway,
  'ports' | 'version' | 'lastReload' | 'drainTimeout' | 'applyConfig' | 'reload' | 'stop'
> & {
  /** Pids of the live workers, by worker number (1..N). */
  readonly workerPids: ReadonlyMap<number, number>;
};

export interface StartGatewayClusterOptions {
  /** How many worker processes. */
  workers: number;
  /** Where configurations come from (`fileProvider`, `configStoreProvider`, …): the primary's alone. */
  provider: ConfigProvider;
  admin?: { host: string; port: number } | false;
  logger: Logger;
  sighup?: boolean;
  /** Watch the files the configuration refers to (JWKS files, translations); default true. */
  watch?: boolean;
  /** Passed to the workers as TRELLIS_LOG_LEVEL. */
  logLevel?: string;
}

/** The number of workers a `workers:` setting asks for. */
export function workerCount(setting: number | 'auto'): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

/** Metrics the primary owns: the workers' copies would count one reload N times. */
const PRIMARY_METRICS = new Set(['trellis_gateway_reloads_total', 'trellis_gateway_config_version']);
/** How long a worker may take to answer the primary (a prepare compiles a whole configuration). */
const CALL_TIMEOUT_MS = 30_000;

/** A request before the primary numbers it. */
type RequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

interface Slot {
  readonly index: number;
  readonly worker: Worker;
  ready: boolean;
  readonly pending: Map<number, { resolve(v: unknown): void; reject(e: Error): void }>;
  readonly startedAt: number;
  readonly exited: Promise<void>;
}

/** Starts the primary: forks the workers, waits until every one serves, opens the admin listener. */
export async function startGatewayCluster(options: StartGatewayClusterOptions): Promise<GatewayCluster> {
  if (!cluster.isPrimary)
    throw new TrellisError('TRELLIS_E_USAGE', 'a gateway cluster starts in a primary process');
  const logger = options.logger;
  const provider = options.provider;
  const count = options.workers;
  const registry: Registry = createMetricsRegistry({ defaults: true });
  logMetrics(registry, logger);
  const metrics = runtimeMetrics(registry);
  const liveWorkers = new Gauge({
    name: 'trellis_gateway_workers',
    help: 'Worker processes serving the listeners now.',
    registers: [registry],
  });
  const restarts = new Counter({
    name: 'trellis_gateway_worker_restarts_total',
    help: 'Workers that exited unexpectedly and were replaced.',
    registers: [registry],
  });

  let text: string;
  let config: ReturnType<typeof parseGatewayConfig>;
  try {
    text = await provider.initial();
    config = parseGatewayConfig(text, provider.label);
  } catch (err) {
    await provider.close?.();
    throw err;
  }
  let activeLabel = provider.label;
  let version = 1;
  let lastReload: ReloadResult | undefined;
  let stopping = false;
  /** Set once every first worker serves: from then on an exiting worker is replaced. */
  let running = false;
  let ports: Record<string, number> = {};
  const slots = new Map<number, Slot>();
  let nextId = 1;
  let chain: Promise<unknown> = Promise.resolve();
  /** Consecutive early exits per worker number, for the restart back-off. */
  const crashes = new Map<number, number>();

  cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker.js', import.meta.url)), args: [] });

  const call = <T>(slot: Slot, request: RequestBody, timeoutMs = CALL_TIMEOUT_MS): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        slot.pending.delete(id);
        reject(new Error(`worker ${slot.index} did not answer ${request.t} within ${timeoutMs} ms`));
      }, timeoutMs);
      slot.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      try {
        slot.worker.send({ ...request, id } as ToWorker);
      } catch (err) {
        slot.pending.delete(id);
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });

  /** Forks worker `index` with the committed configuration; resolves once it serves. */
  const fork = (index: number): Promise<Slot> =>
    new Promise<Slot>((resolve, reject) => {
      const worker = cluster.fork({
        ...(options.logLevel ? { TRELLIS_LOG_LEVEL: options.logLevel } : {}),
        TRELLIS_WORKER: String(index),
      });
      const exited = new Promise<void>((r) => worker.once('exit', () => r()));
      const slot: Slot = { index, worker, ready: false, pending: new Map(), startedAt: Date.now(), exited };
      slots.set(index, slot);
      worker.on('message', (message: FromWorker) => {
        if (message.t === 'hello') sendStart();
        else if (message.t === 'started') {
          slot.ready = true;
          ports = { ...message.ports, ...(ports.admin === undefined ? {} : { admin: ports.admin }) };
          liveWorkers.set(readySlots().length);
          logger.info({ worker: index, pid: worker.process.pid, version: message.version }, 'worker started');
          resolve(slot);
        } else if (message.t === 'failed') {
          reject(new TrellisError(code(message.code), `worker ${index}: ${message.error}`));
        } else if (message.t === 'reply') {
          const waiter = slot.pending.get(message.id);
          slot.pending.delete(message.id);
          if (message.ok) waiter?.resolve(message.value);
          else waiter?.reject(new Error(message.error));
        }
      });
      const sendStart = () => {
        worker.send({
          t: 'start',
          text,
          label: activeLabel,
          baseDir: provider.baseDir,
          version,
        } satisfies ToWorker);
      };
      worker.once('exit', (exitCode, signal) => {
        for (const waiter of slot.pending.values()) waiter.reject(new Error(`worker ${index} exited`));
        slot.pending.clear();
        const wasReady = slot.ready;
        slot.ready = false;
        if (slots.get(index) === slot) slots.delete(index);
        liveWorkers.set(readySlots().length);
        if (!wasReady)
          reject(new TrellisError('TRELLIS_E_LISTEN_FAILED', `worker ${index} exited while starting`));
        // At startup a failing worker fails the whole start; later, one is replaced (with back-off).
        if (stopping || !running) return;
        if (wasReady) restarts.inc();
        const early = Date.now() - slot.startedAt < 10_000;
        const n = early ? (crashes.get(index) ?? 0) + 1 : 0;
        crashes.set(index, n);
        const delay = Math.min(100 * 2 ** n, 10_000);
        logger.warn(
          { worker: index, pid: worker.process.pid, code: exitCode, signal, restartInMs: delay },
          'worker exited: replacing it (the other workers keep their connections)',
        );
        scheduleReplace(index, delay);
      });
    });

  const scheduleReplace = (index: number, delay: number) => {
    setTimeout(() => {
      if (stopping) return;
      // Through the reload chain, so a replacement starts with the committed configuration.
      const run = () =>
        stopping
          ? undefined
          : fork(index).catch((err: unknown) => {
              // Its exit schedules the next attempt, with a longer back-off.
              logger.error({ worker: index, err: messageOf(err) }, 'a replacement worker failed to start');
            });
      chain = chain.then(run, run);
    }, delay).unref();
  };

  const readySlots = () => [...slots.values()].filter((s) => s.ready);

  const rejected = (newLabel: string, at: string, errors: string[]): ReloadResult => {
    lastReload = { ok: false, version, label: newLabel, at, errors };
    metrics.reloads.inc({ result: 'rejected' });
    logger.error(
      { errors, source: newLabel },
      `configuration rejected, still serving version ${version}:\n${errors.join('\n')}`,
    );
    return lastReload;
  };

  const apply = async (newText: string, newLabel: string): Promise<ReloadResult> => {
    const at = new Date().toISOString();
    let parsed: typeof config;
    try {
      parsed = parseGatewayConfig(newText, newLabel);
    } catch (err) {
      return rejected(newLabel, at, err instanceof ConfigError ? err.message.split('\n') : [messageOf(err)]);
    }
    const live = readySlots();
    const prepared = await Promise.allSettled(
      live.map((s) => call<PrepareReply>(s, { t: 'prepare', text: newText, label: newLabel })),
    );
    const refused = prepared.find((r) => r.status === 'fulfilled' && !r.value.ok);
    const failed = prepared.find((r) => r.status === 'rejected');
    if (refused || failed) {
      await Promise.allSettled(
        live.filter((_, i) => prepared[i]!.status === 'fulfilled').map((s) => call(s, { t: 'abort' })),
      );
      if (refused?.status === 'fulfilled' && refused.value.result) {
        // The worker logged the reason; the primary keeps the cluster's record of it.
        lastReload = { ...refused.value.result, version };
        metrics.reloads.inc({ result: 'rejected' });
        return lastReload;
      }
      const reason = failed?.status === 'rejected' ? messageOf(failed.reason) : 'unknown';
      return rejected(newLabel, at, [`a worker failed while preparing the configuration: ${reason}`]);
    }
    // The commit: every worker swaps at once (one message each, a synchronous swap there).
    const committed = await Promise.allSettled(live.map((s) => call<ReloadResult>(s, { t: 'commit' })));
    const results = committed.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    for (const r of committed) {
      if (r.status === 'rejected')
        logger.error({ err: messageOf(r.reason) }, 'a worker failed to commit the configuration');
    }
    const warnings = new Set(results.flatMap((r) => r.warnings ?? []));
    if (workerCount(parsed.workers) !== count)
      warnings.add('workers: a new worker count takes effect after a restart');
    version = Math.max(version + 1, ...results.map((r) => r.version));
    text = newText;
    config = parsed;
    activeLabel = newLabel;
    metrics.reloads.inc({ result: 'applied' });
    metrics.configVersion.set(version);
    watchReferenced();
    lastReload = {
      ok: true,
      version,
      label: newLabel,
      at,
      ...(warnings.size > 0 ? { warnings: [...warnings] } : {}),
    };
    logger.info(
      { version, source: newLabel, workers: live.length, warnings: [...warnings] },
      'configuration applied on every worker',
    );
    return lastReload;
  };

  // The workers do not watch (each would recompile on its own, outside the two-phase reload):
  // the primary watches the files the committed configuration names, and a change reloads
  // every worker together, as a changed gateway file does: a replaced JWKS file is used by every
  // worker from the same moment. (Certificates are the TLS listeners' own watch, in each worker.)
  let stopReferenced: (() => void) | undefined;
  const watchReferenced = () => {
    stopReferenced?.();
    stopReferenced = undefined;
    if (options.watch === false || stopping) return;
    const files = gatewayReferencedFiles(config, provider.baseDir);
    if (files.length === 0) return;
    stopReferenced = watchFiles(files, () => {
      logger.info(
        { source: activeLabel },
        'a file the configuration refers to changed: reloading every worker',
      );
      void applyConfig(text, activeLabel);
    });
  };

  const applyConfig = (newText: string, newLabel: string): Promise<ReloadResult> => {
    const run = () => apply(newText, newLabel);
    const result = chain.then(run, run);
    chain = result;
    return result;
  };

  const sink: ConfigSink = {
    apply: (newText) => applyConfig(newText, provider.label),
    fail: (error) => rejected(provider.label, new Date().toISOString(), [error]),
  };
  const reload = (): Promise<ReloadResult> =>
    provider.reload ? provider.reload(sink) : applyConfig(text, activeLabel);

  const stopWorkers = async (deadlineMs: number) => {
    const all = [...slots.values()];
    for (const s of all) {
      try {
        s.worker.send({ t: 'stop', deadlineMs } satisfies ToWorker);
      } catch {
        // Its channel is gone: it is exiting already.
      }
    }
    const killer = setTimeout(() => {
      for (const s of all) s.worker.process.kill('SIGKILL');
    }, deadlineMs + 5_000);
    await Promise.all(all.map((s) => s.exited));
    clearTimeout(killer);
  };

  let admin: AdminServer | undefined;
  try {
    for (let i = 1; i <= count; i++) await fork(i);
    const adminConfig = adminListen(options.admin, config.admin.enabled ? config.admin : undefined);
    if (adminConfig !== undefined) {
      const anyWorker = async (what: 'routes' | 'services' | 'config') => {
        const slot = readySlots()[0];
        if (!slot) throw new Error('no worker is running');
        const value = await call<Record<string, unknown>>(slot, { t: 'view', what });
        // The version and the last reload are the cluster's, not one worker's.
        return what === 'config'
          ? { ...value, version, source: activeLabel, lastReload: lastReload ?? null, workers: count }
          : value;
      };
      admin = createAdminServer({
        registry,
        ready: () => !stopping && readySlots().length > 0,
        readiness: () => ({ workers: { ready: readySlots().length, expected: count } }),
        metrics: async () => {
          const replies = await Promise.allSettled(
            readySlots().map((s) => call<MetricsReply>(s, { t: 'metrics' }, 5_000)),
          );
          const perWorker = replies.flatMap((r) =>
            r.status === 'fulfilled' ? [r.value.filter((m) => !PRIMARY_METRICS.has(m.name))] : [],
          );
          return AggregatorRegistry.aggregate([...perWorker, await registry.getMetricsAsJSON()]).metrics();
        },
        routes: () => anyWorker('routes'),
        services: () => anyWorker('services'),
        config: () => anyWorker('config'),
        // Panels are one worker's: each part's shared state (a strangler route's mode) lives in
        // its store, the same for every worker. Actions need a worker too, so a cluster has none.
        panelViews: () => {
          const slot = readySlots()[0];
          if (!slot) return Promise.resolve([]);
          return call<PanelView[]>(slot, { t: 'panels' });
        },
        token: adminConfig.token,
        peers: adminConfig.peers,
      });
      const address = await admin.listen(adminConfig.host, adminConfig.port);
      ports.admin = address.port;
      logger.info({ address: `${address.address}:${address.port}` }, 'admin listening');
    }
  } catch (err) {
    stopping = true;
    await stopWorkers(0);
    await admin?.close();
    await provider.close?.();
    if (err instanceof TrellisError) throw err;
    throw new TrellisError('TRELLIS_E_LISTEN_FAILED', `cannot listen: ${messageOf(err)}`, { cause: err });
  }
  metrics.configVersion.set(version);
  running = true;

  provider.start?.(sink);
  watchReferenced();
  const onHup = () => void reload();
  if (options.sighup) process.on('SIGHUP', onHup);

  return {
    get ports() {
      return ports;
    },
    get version() {
      return version;
    },
    get lastReload() {
      return lastReload;
    },
    get drainTimeout() {
      return config.drainTimeout;
    },
    get workerPids() {
      return new Map(readySlots().map((s) => [s.index, s.worker.process.pid ?? 0]));
    },
    applyConfig,
    reload,
    async stop(deadlineMs) {
      if (stopping) return;
      stopping = true;
      if (options.sighup) process.off('SIGHUP', onHup);
      stopReferenced?.();
      await provider.close?.();
      await chain.catch(() => undefined);
      await stopWorkers(deadlineMs);
      await admin?.close();
    },
  };
}

function code(value: string | undefined): 'TRELLIS_E_LISTEN_FAILED' | 'TRELLIS_E_CONFIG_INVALID' {
  return value === 'TRELLIS_E_CONFIG_INVALID' ? value : 'TRELLIS_E_LISTEN_FAILED';
}
