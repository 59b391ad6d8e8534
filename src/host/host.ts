import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { type AdminServer, createAdminServer } from '../admin/server.js';
import { parseConfig } from '../core/config.js';
import { messageOf, TrellisError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { createMetricsRegistry } from '../core/metrics.js';
import { type Gateway, startGateway } from '../gateway/gateway.js';
import { adminListen } from '../runtime/admin-listen.js';
import { type MemoryProvider, memoryProvider } from '../runtime/providers/memory.js';
import { watchFiles } from '../runtime/providers/watch.js';
import type { ChannelDispatcher } from './channel.js';
import type { InstanceExit, WorkerInstance } from './instance.js';
import { registerHostMetrics } from './metrics.js';
import { startOrder } from './order.js';
import { hostPanel } from './panel.js';
import type { FromWorker, WorkerStart } from './protocol.js';
import { type HostConfig, hostSchema, type WorkloadConfig } from './schema.js';
import { Supervisor, type WorkloadState } from './supervisor.js';
import { TaskPool } from './task-pool.js';

/**
 * Compute Resource Consolidation: many workloads in one process, each in its own worker thread
 * (or child process), started in dependency order, watched (heap, event loop, RSS), restarted
 * with backoff, reloaded one at a time, measured. HTTP workloads are served through the
 * gateway runtime: each worker answers on a loopback port and the host's listener is a gateway
 * whose routes proxy a mount path (or a workload's own listener) to it, so every request goes
 * through the runtime's engine, limits and forwarding exchange, and switching a workload to its
 * replacement is the runtime's atomic generation swap.
 */

/** What `trellis host status` and /admin/services show for one workload. */
export interface WorkloadStatus {
  kind: WorkloadConfig['kind'];
  isolation: 'thread' | 'process';
  state: WorkloadState;
  restarts: number;
  lastExit?: (InstanceExit & { at: string }) | undefined;
  mount?: string;
  port?: number | undefined;
  workers?: number;
  cpuSeconds?: number;
  eventLoopUtilization?: number;
  eventLoopDelayMs?: number;
  heapBytes?: number;
  rssBytes?: number;
  handled: number;
  errors: number;
  inFlight: number;
  queueDepth?: number;
  /** A leader-elected schedule: whether it leads its election (runs the job) now. */
  leading?: boolean;
}

export interface StartHostOptions {
  /** The host YAML file; watched, with its workloads' modules, unless `watch: false`. */
  file: string;
  logger?: Logger;
  /** Overrides `admin:`; false: none. */
  admin?: { host: string; port: number } | false;
  watch?: boolean;
  env?: Record<string, string | undefined>;
}

/** A running host. */
export interface Host {
  readonly ports: Readonly<Record<string, number>>;
  readonly drainTimeout: number;
  status(): Record<string, WorkloadStatus>;
  /** Reads the file again; restarts (start new, switch, drain old) only the workloads whose definition or module changed. */
  reload(): Promise<{ reloaded: string[]; errors: string[] }>;
  /** Drains every workload in reverse start order, then closes the listeners. */
  stop(deadlineMs: number): Promise<void>;
}

type Unit = { config: WorkloadConfig; fingerprint: string; sup?: Supervisor; pool?: TaskPool };

export function parseHostConfig(
  text: string,
  label: string,
  env?: Record<string, string | undefined>,
): HostConfig {
  const cfg = parseConfig(text, hostSchema, label, env === undefined ? {} : { env });
  startOrder(Object.fromEntries(Object.entries(cfg.workloads).map(([n, w]) => [n, w.dependsOn])));
  return cfg;
}

function moduleFile(baseDir: string, w: WorkloadConfig): string {
  return resolve(baseDir, w.module);
}

/** The definition plus the module's content: a change of either reloads the workload. */
function fingerprint(baseDir: string, w: WorkloadConfig): string {
  const h = createHash('sha256').update(JSON.stringify(w));
  try {
    h.update(readFileSync(moduleFile(baseDir, w)));
  } catch (err) {
    throw new TrellisError('TRELLIS_E_HOST_MODULE_UNREADABLE', `${w.module}: ${messageOf(err)}`);
  }
  return h.digest('hex');
}

function workerStart(name: string, baseDir: string, w: WorkloadConfig, generation: number): WorkerStart {
  return {
    name,
    kind: w.kind,
    moduleUrl: pathToFileURL(moduleFile(baseDir, w)).href,
    config: w.config,
    generation,
    ...(w.kind === 'consumer'
      ? {
          consumer: {
            queue: w.queue,
            topic: w.topic,
            group: w.group,
            concurrency: w.concurrency,
            ...(w.maxDeliver ? { maxDeliver: w.maxDeliver } : {}),
          },
        }
      : {}),
    ...(w.kind === 'schedule'
      ? {
          schedule: {
            cron: w.cron,
            ...(w.timezone ? { timezone: w.timezone } : {}),
            ...(w.leader ? { leader: w.leader } : {}),
          },
        }
      : {}),
  };
}

export async function startHost(options: StartHostOptions): Promise<Host> {
  const logger = options.logger ?? silentLogger();
  const file = resolve(options.file);
  const baseDir = dirname(file);
  let config = parseHostConfig(readFileSync(file, 'utf8'), options.file, options.env);
  const registry = createMetricsRegistry({ defaults: true });
  const units = new Map<string, Unit>();
  let order: string[] = [];
  let generation = 0;
  let front: Gateway | undefined;
  let frontProvider: MemoryProvider | undefined;
  /** The loopback port each http workload's current instance answers on. */
  const upstreams = new Map<string, number>();
  /** The origin the workload's route proxies to: its loopback port, or its thread's channel. */
  const origins = new Map<string, string>();
  /**
   * Channel dispatchers by the origin that names them. A channel's origin names its instance
   * (a made-up `.invalid` host): a later instance that happens to get the same loopback port
   * still gets a pool of its own, not the dead one's.
   */
  const channels = new Map<string, ChannelDispatcher>();
  const dispatcherFor = (origin: URL) => channels.get(origin.origin);
  let frontChain = Promise.resolve();
  let stopping = false;

  const frontConfig = () => {
    const services: Record<string, unknown> = {};
    const routes: unknown[] = [];
    const frontends: Record<string, unknown> = {};
    for (const [name, u] of units) {
      const w = u.config;
      const origin = origins.get(name);
      if (w.kind !== 'http' || origin === undefined) continue;
      const service = `workload-${name}`;
      // One loopback upstream: nothing to eject to; a connect failure or reset (an instance that
      // just ended) is retried, a workload's own 5xx goes back to the client as it is.
      services[service] = {
        upstreams: [origin],
        outlier: { consecutive5xx: 0, consecutiveConnectFailures: 0 },
        retry: { on: ['connect-failure', 'reset'] },
      };
      if (w.mount !== undefined) {
        const prefix = w.mount.replace(/\/+$/, '');
        routes.push({
          name,
          match: { pathPrefix: prefix || '/' },
          proxy: { service, ...(prefix ? { stripPrefix: prefix } : {}) },
        });
      } else {
        frontends[name] = {
          listen: w.listen,
          routes: [{ name, match: { pathPrefix: '/' }, proxy: { service } }],
        };
      }
    }
    return {
      // The shared listener is for mounted workloads: with none, an ephemeral loopback port stands
      // in (the runtime needs a main listener), so a host of own-port workloads never takes 8080.
      listen: routes.length > 0 ? config.listen : { host: '127.0.0.1', port: 0 },
      accessLog: false,
      drainTimeout: config.drainTimeout,
      services,
      routes,
      frontends,
    };
  };

  /** Points the listener at the current instances (one generation swap, serialised). */
  const updateFront = (): Promise<void> => {
    const next = frontChain.then(async () => {
      if (!frontProvider) return;
      const result = await frontProvider.set(frontConfig());
      if (!result.ok) throw new TrellisError('TRELLIS_E_HOST_ROUTE_FAILED', (result.errors ?? []).join('; '));
    });
    frontChain = next.catch(() => {});
    return next;
  };

  /** The listener for the http workloads: started with the first one, at start or in a reload. */
  const startFront = async (): Promise<void> => {
    frontProvider = memoryProvider(frontConfig(), { label: `${options.file} (workload routes)`, baseDir });
    front = await startGateway({ provider: frontProvider, admin: false, logger, registry, dispatcherFor });
  };

  const pools = new Map<string, TaskPool>();
  const onMessage = (from: string) => (instance: WorkerInstance, m: FromWorker) => {
    if (m.t === 'failed')
      logger.error({ workload: from, err: m.error.message }, 'workload reported an error');
    if (m.t !== 'call') return;
    const pool = pools.get(m.pool);
    const answer = pool
      ? pool.submit(m.input)
      : Promise.reject(
          new TrellisError(
            'TRELLIS_E_HOST_POOL_UNKNOWN',
            `no task pool named ${JSON.stringify(m.pool)} (pools: ${[...pools.keys()].join(', ') || 'none'})`,
          ),
        );
    answer.then(
      (value) => instance.send({ t: 'callResult', id: m.id, ok: true, value }),
      (err: TrellisError) =>
        instance.send({
          t: 'callResult',
          id: m.id,
          ok: false,
          error: { message: err.message, code: err.code },
        }),
    );
  };

  const createUnit = (name: string, w: WorkloadConfig): Unit => {
    const unit: Unit = { config: w, fingerprint: fingerprint(baseDir, w) };
    const start = workerStart(name, baseDir, w, ++generation * 1000);
    if (w.kind === 'taskPool') {
      unit.pool = new TaskPool(name, w, start, logger);
      pools.set(name, unit.pool);
      for (const slot of unit.pool.slots) {
        const poolHooks = slot.hooks.onMessage;
        (slot.hooks as { onMessage?: typeof poolHooks }).onMessage = (i, m) => {
          poolHooks?.(i, m);
          onMessage(name)(i, m);
        };
      }
    } else {
      unit.sup = new Supervisor(name, w, start, logger, {
        onMessage: onMessage(name),
        switchTo: async (instance) => {
          if (w.kind !== 'http' || instance.port === undefined) return;
          upstreams.set(name, instance.port);
          let origin = `http://127.0.0.1:${instance.port}`;
          if (instance.channel) {
            origin = `http://${name}-${instance.start.generation}.workload.invalid:${instance.port}`;
            channels.set(origin, instance.channel);
          }
          origins.set(name, origin);
          await updateFront();
        },
        onExit: (instance) => {
          // The routes may still name an ended instance's channel (it refuses at once): forget
          // it only once they have moved on.
          for (const [origin, channel] of channels)
            if (channel === instance.channel && origins.get(name) !== origin) channels.delete(origin);
        },
      });
    }
    units.set(name, unit);
    return unit;
  };

  const runUnit = (u: Unit) => (u.pool ? u.pool.run() : u.sup!.run());
  const stopUnit = (u: Unit, deadlineMs: number) =>
    u.pool ? u.pool.stop(deadlineMs) : u.sup!.stop(deadlineMs);

  let admin: AdminServer | undefined;
  const ports: Record<string, number> = {};
  try {
    order = startOrder(
      Object.fromEntries(Object.entries(config.workloads).map(([n, w]) => [n, w.dependsOn])),
    );
    const hasHttp = Object.values(config.workloads).some((w) => w.kind === 'http');
    for (const name of order) {
      const u = createUnit(name, config.workloads[name]!);
      // Dependency order: a workload starts once everything it depends on is ready.
      await runUnit(u);
      if (hasHttp && !front && u.config.kind === 'http') await startFront();
    }
    if (front) Object.assign(ports, front.ports);
    registerHostMetrics(registry, () => status());
    const adminAt = adminListen(options.admin, config.admin.enabled ? config.admin : undefined);
    if (adminAt) {
      admin = createAdminServer({
        registry,
        ready: () =>
          !stopping &&
          [...units.values()].every((u) =>
            u.pool ? u.pool.slots.every((s) => s.state === 'ready') : u.sup!.state === 'ready',
          ),
        readiness: async () => ({
          workloads: Object.fromEntries(Object.entries(status()).map(([n, s]) => [n, s.state])),
        }),
        routes: () => frontConfig().routes,
        services: () => ({ workloads: status() }),
        config: () => ({ file: options.file, config }),
        panels: () => [hostPanel(status)],
        token: adminAt.token,
        peers: adminAt.peers,
      });
      ports.admin = (await admin.listen(adminAt.host, adminAt.port)).port;
    }
  } catch (err) {
    await Promise.allSettled([...units.values()].reverse().map((u) => stopUnit(u, 1000)));
    await front?.stop(1000);
    await admin?.close();
    throw err;
  }

  function status(): Record<string, WorkloadStatus> {
    const out: Record<string, WorkloadStatus> = {};
    for (const name of order) {
      const u = units.get(name);
      if (!u) continue;
      const w = u.config;
      const base = {
        kind: w.kind,
        isolation: w.isolation,
        ...(w.kind === 'http' && w.mount !== undefined ? { mount: w.mount } : {}),
      };
      if (u.pool) {
        const slots = u.pool.slots;
        const t = slots.map((s) => s.totals());
        const sum = (f: (x: (typeof t)[number]) => number) => t.reduce((a, x) => a + f(x), 0);
        const states = slots.map((s) => s.state);
        out[name] = {
          ...base,
          state: states.every((s) => s === 'ready')
            ? 'ready'
            : (states.find((s) => s !== 'ready') ?? 'starting'),
          restarts: slots.reduce((a, s) => a + s.restarts, 0),
          lastExit: slots
            .map((s) => s.lastExit)
            .filter(Boolean)
            .sort((a, b) => (a!.at < b!.at ? 1 : -1))[0],
          workers: slots.length,
          cpuSeconds: sum((x) => x.cpuMs) / 1000,
          eventLoopUtilization: sum((x) => x.stats?.elu ?? 0) / slots.length,
          eventLoopDelayMs: Math.max(...t.map((x) => x.stats?.loopDelay ?? 0)),
          heapBytes: sum((x) => x.stats?.heapUsed ?? 0),
          handled: u.pool.completed + u.pool.failed,
          errors: u.pool.failed,
          inFlight: u.pool.inFlight,
          queueDepth: u.pool.queueDepth,
        };
        continue;
      }
      const sup = u.sup!;
      const t = sup.totals();
      out[name] = {
        ...base,
        state: sup.state,
        restarts: sup.restarts,
        ...(sup.lastExit ? { lastExit: sup.lastExit } : {}),
        ...(w.kind === 'http' ? { port: upstreams.get(name) } : {}),
        cpuSeconds: t.cpuMs / 1000,
        ...(t.stats
          ? {
              eventLoopUtilization: t.stats.elu,
              eventLoopDelayMs: t.stats.loopDelay,
              heapBytes: t.stats.heapUsed,
              ...(w.isolation === 'process' ? { rssBytes: t.stats.rss } : {}),
            }
          : {}),
        handled: t.handled,
        errors: t.errors,
        inFlight: t.stats?.inFlight ?? 0,
        ...(t.stats?.leading === undefined ? {} : { leading: t.stats.leading }),
      };
    }
    return out;
  }

  let reloading = Promise.resolve({ reloaded: [] as string[], errors: [] as string[] });
  const reloadOnce = async () => {
    const reloaded: string[] = [];
    const errors: string[] = [];
    let next: HostConfig;
    try {
      next = parseHostConfig(readFileSync(file, 'utf8'), options.file, options.env);
    } catch (err) {
      logger.error({ err: messageOf(err) }, 'host file rejected: every workload keeps running as it is');
      return { reloaded, errors: [messageOf(err)] };
    }
    const nextOrder = startOrder(
      Object.fromEntries(Object.entries(next.workloads).map(([n, w]) => [n, w.dependsOn])),
    );
    // Removed workloads stop first (reverse order), then changed and added ones, in dependency order.
    for (const name of [...order].reverse()) {
      if (next.workloads[name] !== undefined) continue;
      const u = units.get(name)!;
      await stopUnit(u, config.drainTimeout);
      units.delete(name);
      pools.delete(name);
      upstreams.delete(name);
      origins.delete(name);
      reloaded.push(name);
    }
    config = next;
    order = nextOrder.filter((n) => units.has(n) || next.workloads[n]);
    for (const name of nextOrder) {
      const w = next.workloads[name]!;
      const u = units.get(name);
      try {
        if (!u) {
          await runUnit(createUnit(name, w));
          if (w.kind === 'http' && !front) {
            await startFront();
            Object.assign(ports, front!.ports);
          }
          reloaded.push(name);
          continue;
        }
        const fp = fingerprint(baseDir, w);
        if (fp === u.fingerprint) continue;
        if (w.kind !== u.config.kind)
          throw new TrellisError(
            'TRELLIS_E_HOST_RELOAD_FAILED',
            `workload ${name}: its kind cannot change on reload (remove it and add it under a new name)`,
          );
        const start = workerStart(name, baseDir, w, ++generation * 1000);
        if (u.pool) await u.pool.replace(w as Extract<WorkloadConfig, { kind: 'taskPool' }>, start);
        else {
          // The switchTo hook captured the old config: it reads the kind only, which cannot change.
          await u.sup!.replace(w, start);
        }
        u.config = w;
        u.fingerprint = fp;
        reloaded.push(name);
        logger.info({ workload: name }, 'workload reloaded');
      } catch (err) {
        errors.push(messageOf(err));
        logger.error(
          { workload: name, err: messageOf(err) },
          'workload reload failed: the running version stays',
        );
      }
    }
    if (front) await updateFront();
    unwatch();
    unwatch = watch();
    return { reloaded, errors };
  };
  const reload = () => {
    reloading = reloading.then(reloadOnce, reloadOnce);
    return reloading;
  };
  const watch = () =>
    options.watch === false
      ? () => {}
      : watchFiles(
          [file, ...Object.values(config.workloads).map((w) => moduleFile(baseDir, w))],
          () => void reload(),
        );
  let unwatch = watch();

  logger.info({ ports, workloads: order }, 'host started');
  return {
    ports,
    get drainTimeout() {
      return config.drainTimeout;
    },
    status,
    reload,
    async stop(deadlineMs) {
      stopping = true;
      unwatch();
      await reloading.catch(() => {});
      // Reverse dependency order: a workload stops before what it depends on.
      for (const name of [...order].reverse()) {
        const u = units.get(name);
        if (!u) continue;
        if (u.config.kind === 'http' && front) {
          upstreams.delete(name);
          origins.delete(name);
          await updateFront().catch(() => {});
        }
        await stopUnit(u, deadlineMs).catch((err: unknown) =>
          logger.warn({ workload: name, err: messageOf(err) }, 'workload did not stop cleanly'),
        );
      }
      await front?.stop(deadlineMs);
      await admin?.close();
    },
  };
}
