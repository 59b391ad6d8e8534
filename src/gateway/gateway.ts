import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type AdminServer, createAdminServer } from '../admin/server.js';
import { ConfigError, parseConfig } from '../core/config.js';
import { messageOf, TrellisError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { createMetricsRegistry } from '../core/metrics.js';
import { TrustedProxies } from '../http/forwarded.js';
import { createListener, type Listener } from '../http/listener.js';
import { adminView } from './admin-view.js';
import { closeGeneration, compileGeneration, type Generation } from './compile.js';
import { type ActiveState, type EngineSettings, ListenerEngine } from './engine.js';
import { gatewayMetrics } from './metrics.js';
import { type GatewayConfig, gatewaySchema } from './schema.js';
import { watchFile } from './watch.js';

/** How a reload ended. */
export interface ReloadResult {
  ok: boolean;
  /** The active version after the attempt (unchanged when rejected). */
  version: number;
  /** Where the text came from: a file path or `config-store#key`. */
  label: string;
  at: string;
  /** The exact `trellis validate` messages, one per line, when rejected. */
  errors?: string[];
  /** Things that were applied partly (e.g. an admin address change needs a restart). */
  warnings?: string[];
}

export interface StartGatewayOptions {
  /** A gateway YAML file; watched for changes unless `watch: false`. */
  file?: string;
  /** YAML text instead of a file (a config store, tests). */
  text?: string;
  /** Name for `text` in messages; defaults to the file path or `<inline>`. */
  label?: string;
  /** Overrides `admin:` from the file (`--admin host:port`); `false` disables it. */
  admin?: { host: string; port: number } | false;
  logger?: Logger;
  registry?: Registry;
  /** Watch `file` and reload on change (default true when a file is given). */
  watch?: boolean;
  /** Reload on SIGHUP (default false: the CLI turns it on). */
  sighup?: boolean;
  /** Environment for `${NAME}` interpolation; defaults to process.env. */
  env?: Record<string, string | undefined>;
}

/** A running gateway. */
export interface Gateway {
  /** Bound ports: `main`, one per frontend with its own listener, and `admin`. */
  readonly ports: Readonly<Record<string, number>>;
  readonly version: number;
  readonly lastReload: ReloadResult | undefined;
  /** The active configuration's `drainTimeout`, ms. */
  readonly drainTimeout: number;
  /** Validates, compiles and atomically swaps in a new configuration; invalid text is rejected. */
  applyConfig(text: string, label: string): Promise<ReloadResult>;
  /** Re-reads the file given at start. */
  reload(): Promise<ReloadResult>;
  /** Stops accepting, lets in-flight requests finish within `deadlineMs`, closes everything. */
  stop(deadlineMs: number): Promise<void>;
}

/** Parses and validates gateway YAML; throws ConfigError with every problem. */
export function parseGatewayConfig(
  text: string,
  label: string,
  env?: Record<string, string | undefined>,
): GatewayConfig {
  return parseConfig(text, gatewaySchema(), label, env === undefined ? {} : { env });
}

function settingsOf(config: GatewayConfig, logger: Logger): EngineSettings {
  const log = config.accessLog;
  const level = log === false ? false : log === true ? 'info' : log.level;
  return {
    trusted: new TrustedProxies(config.trustedProxies),
    encodedSlashes: config.encodedSlashes,
    // Decided once, so a filtered-out access log costs nothing per request (not even its object).
    accessLog: level !== false && logger.isLevelEnabled(level) ? level : false,
  };
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new TrellisError(
      'TRELLIS_E_CONFIG_UNREADABLE',
      `${file}: cannot read the file (${messageOf(err)})`,
      {
        cause: err,
      },
    );
  }
}

/** Starts a gateway from a file or text: listeners, admin API, file watching. */
export async function startGateway(options: StartGatewayOptions): Promise<Gateway> {
  const logger = options.logger ?? silentLogger();
  const registry = options.registry ?? createMetricsRegistry({ defaults: true });
  const metrics = gatewayMetrics(registry);
  const file = options.file === undefined ? undefined : resolve(options.file);
  const label = options.label ?? options.file ?? '<inline>';
  if (file === undefined && options.text === undefined) {
    throw new TrellisError('TRELLIS_E_USAGE', 'startGateway needs a file or a text');
  }
  const baseDir = file === undefined ? process.cwd() : dirname(file);
  const text = options.text ?? readText(file!);
  const config = parseGatewayConfig(text, label, options.env);
  const first = await compileGeneration(config, 1, { logger, registry, metrics, baseDir });
  const state: ActiveState = {
    current: first,
    settings: settingsOf(config, logger),
    retired: new Set(),
    logger,
    metrics,
  };
  metrics.configVersion.set(1);

  const listeners = new Map<string, { listener: Listener; listenKey: string }>();
  const ports: Record<string, number> = {};
  let ready = false;
  let stopping = false;
  let lastReload: ReloadResult | undefined;
  let loadedAt = new Date().toISOString();
  let activeLabel = label;

  const openListener = async (key: string, gen: Generation) => {
    const compiled = gen.listeners.get(key)!;
    const engine = new ListenerEngine(key, state);
    const listener = createListener(
      compiled.listen,
      { request: engine.request, upgrade: engine.upgrade },
      {
        baseDir,
        onTlsReload: () => logger.info({ listener: key }, 'TLS certificates reloaded'),
        onTlsReloadError: (err) =>
          logger.error(
            { listener: key, err },
            'TLS certificate reload failed: keeping the previous certificates',
          ),
      },
    );
    const address = await listener.listen();
    metrics.connectionSources.add(() => listener.connections);
    listeners.set(key, { listener, listenKey: JSON.stringify(compiled.listen) });
    ports[key] = address.port;
    logger.info({ listener: key, address: `${address.address}:${address.port}` }, 'listening');
  };

  /** Opens listeners the generation adds or moves, closes those it drops. */
  const syncListeners = async (gen: Generation) => {
    for (const [key, compiled] of gen.listeners) {
      const existing = listeners.get(key);
      if (existing?.listenKey === JSON.stringify(compiled.listen)) continue;
      if (existing) {
        listeners.delete(key);
        void existing.listener.close(config.drainTimeout);
      }
      await openListener(key, gen);
    }
    for (const [key, { listener }] of listeners) {
      if (gen.listeners.has(key)) continue;
      listeners.delete(key);
      delete ports[key];
      void listener.close(state.current.config.drainTimeout);
    }
  };

  const adminConfig =
    options.admin === false
      ? undefined
      : (options.admin ?? (config.admin.enabled ? config.admin : undefined));
  let admin: AdminServer | undefined;

  let chain: Promise<unknown> = Promise.resolve();
  const applyConfig = (newText: string, newLabel: string): Promise<ReloadResult> => {
    const run = async (): Promise<ReloadResult> => {
      const at = new Date().toISOString();
      const current = state.current;
      let next: Generation;
      try {
        const parsed = parseGatewayConfig(newText, newLabel, options.env);
        next = await compileGeneration(parsed, current.version + 1, {
          logger,
          registry,
          metrics,
          baseDir,
          previous: current,
        });
      } catch (err) {
        const errors = err instanceof ConfigError ? err.message.split('\n') : [messageOf(err)];
        lastReload = { ok: false, version: current.version, label: newLabel, at, errors };
        metrics.reloads.inc({ result: 'rejected' });
        logger.error(
          { errors, source: newLabel },
          `configuration rejected, still serving version ${current.version}:\n${errors.join('\n')}`,
        );
        return lastReload;
      }
      try {
        await syncListeners(next);
      } catch (err) {
        await closeGeneration(next, current);
        const errors = [`a listener could not be opened: ${messageOf(err)}`];
        lastReload = { ok: false, version: current.version, label: newLabel, at, errors };
        metrics.reloads.inc({ result: 'rejected' });
        logger.error({ errors, source: newLabel }, 'configuration rejected: a listener could not be opened');
        return lastReload;
      }
      const warnings: string[] = [];
      if (JSON.stringify(next.config.admin) !== JSON.stringify(current.config.admin)) {
        warnings.push('admin: changes to the admin listener take effect after a restart');
      }
      // The swap: from here new requests see `next`; requests in flight keep `current`.
      state.current = next;
      state.settings = settingsOf(next.config, logger);
      if (current.inFlight === 0) void closeGeneration(current, next);
      else {
        state.retired.add(current);
        const timer = setTimeout(() => {
          if (!state.retired.delete(current)) return;
          void closeGeneration(current, state.current);
        }, current.config.drainTimeout);
        timer.unref();
      }
      loadedAt = at;
      activeLabel = newLabel;
      metrics.reloads.inc({ result: 'applied' });
      metrics.configVersion.set(next.version);
      lastReload = {
        ok: true,
        version: next.version,
        label: newLabel,
        at,
        ...(warnings.length > 0 ? { warnings } : {}),
      };
      logger.info({ version: next.version, source: newLabel, warnings }, 'configuration applied');
      return lastReload;
    };
    const result = chain.then(run, run);
    chain = result;
    return result;
  };

  const reload = async (): Promise<ReloadResult> => {
    if (file === undefined) {
      return applyConfig(options.text ?? '', label);
    }
    let newText: string;
    try {
      newText = readText(file);
    } catch (err) {
      const at = new Date().toISOString();
      const errors = [messageOf(err)];
      lastReload = { ok: false, version: state.current.version, label, at, errors };
      metrics.reloads.inc({ result: 'rejected' });
      logger.error(
        { errors, source: label },
        `configuration rejected, still serving version ${state.current.version}`,
      );
      return lastReload;
    }
    return applyConfig(newText, label);
  };

  try {
    for (const key of first.listeners.keys()) await openListener(key, first);
    if (adminConfig !== undefined) {
      admin = createAdminServer({
        registry,
        ready: () => ready && !stopping,
        checks: () =>
          Object.fromEntries(
            [...state.current.checks].map(([name, health]) => [`middleware:${name}`, health()]),
          ),
        ...adminView(
          () => state.current,
          () => ({ version: state.current.version, source: activeLabel, loadedAt, lastReload }),
        ),
      });
      const address = await admin.listen(adminConfig.host, adminConfig.port);
      ports.admin = address.port;
      logger.info({ address: `${address.address}:${address.port}` }, 'admin listening');
    }
  } catch (err) {
    await Promise.allSettled([...[...listeners.values()].map((l) => l.listener.close(0)), admin?.close()]);
    await closeGeneration(first, undefined);
    throw new TrellisError(
      'TRELLIS_E_LISTEN_FAILED',
      `cannot listen: ${messageOf(err)}: pick a free port or stop the other process`,
      {
        cause: err,
      },
    );
  }

  const stopWatching =
    file !== undefined && options.watch !== false ? watchFile(file, () => void reload()) : undefined;
  const onHup = () => void reload();
  if (options.sighup) process.on('SIGHUP', onHup);
  ready = true;

  return {
    ports,
    get version() {
      return state.current.version;
    },
    get lastReload() {
      return lastReload;
    },
    get drainTimeout() {
      return state.current.config.drainTimeout;
    },
    applyConfig,
    reload,
    async stop(deadlineMs) {
      if (stopping) return;
      stopping = true;
      stopWatching?.();
      if (options.sighup) process.off('SIGHUP', onHup);
      await chain.catch(() => undefined);
      await Promise.all([...listeners.values()].map((l) => l.listener.close(deadlineMs)));
      await admin?.close();
      const all = [state.current, ...state.retired];
      state.retired.clear();
      await Promise.allSettled(all.map((g) => closeGeneration(g, undefined)));
    },
  };
}
