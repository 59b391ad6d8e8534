import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AdminAction, AdminPanel } from '../admin/panels.js';
import { type AdminServer, type AdminSource, type AdminViews, createAdminServer } from '../admin/server.js';
import { ConfigError, type ConfigIssue } from '../core/config.js';
import { messageOf, TrellisError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { createMetricsRegistry } from '../core/metrics.js';
import { TrustedProxies } from '../http/forwarded.js';
import type { EncodedSlashes } from '../http/normalize.js';
import { accessLog } from './access-log.js';
import { type AdminListen, adminListen } from './admin-listen.js';
import { adminView } from './admin-view.js';
import { type CompileDeps, closeGeneration, type Generation } from './compile.js';
import { type ActiveState, type EngineSettings, ListenerEngine } from './engine.js';
import { ListenerSet, listenFailure } from './listeners.js';
import { type RuntimeMetrics, runtimeMetrics } from './metrics.js';
import type { ConfigProvider, ConfigSink, ReloadResult } from './providers/types.js';
import { watchFiles } from './providers/watch.js';
import type { TypeRegistry } from './registry.js';
import { StoreSet } from './stores.js';

/**
 * The runtime every HTTP role (gateway, sidecar, ambassador) is a thin composition of.
 *
 * A role says what its configuration is and how it becomes listeners and routes
 * (`RoleDefinition`); a provider says where configurations come from (`ConfigProvider`: a file,
 * a configuration-store document, an object in memory); the runtime does the rest, the same way
 * for every role:
 *
 * - parse + validate (the role's schema, built from the `TypeRegistry` of handlers and middlewares),
 * - compile into an immutable `Generation` (route tables, middleware chains, service pools;
 *   unchanged pools survive a reload),
 * - open the listeners the new generation adds or moves *before* anything is swapped (a port that
 *   is taken rejects the reload and leaves every old listener serving),
 * - swap atomically (requests in flight finish on the generation they started with), then retire
 *   the old generation once its last request ends (or after `drainTimeout`),
 * - open each named store once per process (shared by every generation and every user),
 * - serve the admin API (`/readyz` says what really listens, and each store's health).
 *
 * ```ts
 * const rt = await startRuntime(myRole, { provider: fileProvider('sidecar.yaml') });
 * ```
 *
 * Applying is `prepare` (parse, validate, compile: no side effect on what serves) then `commit`
 * (listeners, swap). Serialised: one reload at a time, in the order they were asked for.
 */

/** What kind of runtime: its configuration, how it compiles, what the engine and admin need from it. */
export interface RoleDefinition<C> {
  /** `gateway`, `sidecar`, `ambassador`: in logs and messages. */
  readonly name: string;
  /** The default handler and middleware types (a caller may pass others). */
  readonly types: TypeRegistry;
  /** Parses and validates text; throws ConfigError with every problem (file:line:col path: message). */
  parse(text: string, label: string, types: TypeRegistry, env?: Record<string, string | undefined>): C;
  /** Compiles a configuration into listeners, routes and services (see runtime/compile.ts). */
  compile(config: C, version: number, deps: CompileDeps): Promise<Generation<C>>;
  /** What the request engine needs from a configuration. */
  settings(config: C): RoleSettings;
  /** The admin listener the configuration asks for, or undefined for none. */
  admin(config: C): AdminListen | undefined;
  /** How long in-flight requests may take to finish when a listener closes. */
  drainTimeout(config: C): number;
  /** Named store URLs (`stores:`), opened once per process on first use. */
  stores(config: C): Record<string, string>;
  /** Files the configuration refers to (certificates, JWKS files): a change recompiles. */
  referencedFiles?(config: C, baseDir: string): string[];
  /**
   * Checks made after parsing that need the disk (the files a service's `tls:` names): issues
   * at the line and column of the offending option, thrown as a ConfigError before compiling.
   */
  fileIssues?(config: C, text: string, label: string, baseDir: string): ConfigIssue[];
  /** Refuses a reload the validator cannot see is harmful (e.g. a section that disappeared). */
  checkReload?(next: C, current: C, text: string): string[];
  /** The role's own dashboard panels (an ambassador's breakers), beside its routes'. */
  panels?(current: () => Generation<C>): readonly AdminPanel[];
  /** /admin/routes, /admin/services, /admin/config; default: the runtime's view of a Generation. */
  view?(
    current: () => Generation<C>,
    meta: () => AdminMeta,
  ): Pick<AdminSource, 'routes' | 'services' | 'config'>;
}

/** Per-request settings a role takes from its configuration. */
export interface RoleSettings {
  trustedProxies: readonly string[];
  encodedSlashes: EncodedSlashes;
  /** true: at info; an object: at that level; false: none. */
  accessLog: boolean | { level: 'trace' | 'debug' | 'info' | 'warn' };
}

/** What /admin/config shows beside the configuration. */
export interface AdminMeta {
  version: number;
  source: string;
  loadedAt: string;
  lastReload: ReloadResult | undefined;
}

/** Options of `startRuntime`. */
export interface RuntimeOptions {
  /** Where configurations come from. */
  provider: ConfigProvider;
  /** Handler and middleware types (default: the role's). */
  types?: TypeRegistry | undefined;
  /** Overrides the configuration's admin listener; `false` disables it. */
  admin?: { host: string; port: number } | false | undefined;
  logger?: Logger | undefined;
  /** Metrics registry (default: a new one with the process metrics). */
  registry?: Registry | undefined;
  /** Reload on SIGHUP (default false: the CLI turns it on). */
  sighup?: boolean | undefined;
  /** Watch the files the configuration refers to and recompile when one changes (default true). */
  watchReferenced?: boolean | undefined;
  /** Environment for `${NAME}` interpolation; defaults to process.env. */
  env?: Record<string, string | undefined> | undefined;
  /** Version number of the first configuration (default 1; a replacement worker starts at its cluster's). */
  version?: number | undefined;
  /** The role's own dashboard panels (a sidecar's app, an ambassador's breakers), beside its routes'. */
  panels?: (() => readonly AdminPanel[]) | undefined;
  /** The role's own admin actions, beside its routes'. */
  actions?: (() => readonly AdminAction[]) | undefined;
  /** Dispatchers for origins reached another way than TCP (see `ServicePoolDeps.dispatcherFor`). */
  dispatcherFor?: CompileDeps['dispatcherFor'];
}

/** A compiled configuration waiting for `commit` (internal: workers prepare on all, then commit on all). */
export interface Prepared<C> {
  readonly generation: Generation<C>;
  readonly text: string;
  readonly label: string;
}

/**
 * A configuration validated, compiled and with its new listeners bound, not yet serving (see
 * `Runtime.stage`). `commit()` swaps it in; `abort()` drops it. Until one of them is called,
 * other reloads wait.
 */
export interface StagedConfig {
  readonly ok: boolean;
  /** The version it gets when committed (absent when rejected). */
  readonly version?: number;
  /** Set when rejected: the result `commit()` returns too. */
  readonly result?: ReloadResult;
  commit(): ReloadResult;
  abort(): Promise<void>;
}

/** A running runtime. */
export interface Runtime<C> {
  /** Bound ports: one per TCP listener key, and `admin`. */
  readonly ports: Readonly<Record<string, number>>;
  /** The paths of the Unix socket listeners, by listener key (they have no port). */
  readonly sockets: Readonly<Record<string, string>>;
  readonly version: number;
  readonly config: C;
  readonly lastReload: ReloadResult | undefined;
  /** The active configuration's `drainTimeout`, ms. */
  readonly drainTimeout: number;
  /** Validates, compiles and atomically swaps in a new configuration; invalid text is rejected. */
  applyConfig(text: string, label?: string): Promise<ReloadResult>;
  /** Asks the provider for the current configuration again and applies it. */
  reload(): Promise<ReloadResult>;
  /** Parses, validates and compiles without touching what serves (throws ConfigError / TrellisError). */
  prepare(text: string, label?: string): Promise<Prepared<C>>;
  /** Opens listeners and swaps `prepared` in; rejected (and closed) if a listener cannot open. */
  commit(prepared: Prepared<C>): Promise<ReloadResult>;
  /**
   * prepare plus binding the listeners it adds or moves, holding the reload turn until
   * `commit()` (a synchronous swap) or `abort()`: workers stage everywhere, then commit
   * everywhere. A rejected stage (invalid, a port taken) releases the turn at once.
   */
  stage(text: string, label?: string): Promise<StagedConfig>;
  /** What /admin/routes, /admin/services and /admin/config show (a cluster's primary asks a worker). */
  adminViews(): AdminViews;
  /** Stops accepting, lets in-flight requests finish within `deadlineMs`, closes everything. */
  stop(deadlineMs: number): Promise<void>;
}

function settingsOf(s: RoleSettings, logger: Logger): EngineSettings {
  const log = s.accessLog;
  const level = log === false ? false : log === true ? 'info' : log.level;
  return {
    trusted: new TrustedProxies(s.trustedProxies),
    encodedSlashes: s.encodedSlashes,
    // Decided once, so a filtered-out access log costs nothing per request (not even its object).
    accessLog: level !== false && logger.isLevelEnabled(level) ? accessLog(logger, level) : false,
  };
}

function errorsOf(err: unknown): string[] {
  return err instanceof ConfigError ? err.message.split('\n') : [messageOf(err)];
}

/** Starts a runtime for `role` from `options.provider`: listeners, admin API, reloads. */
export async function startRuntime<C>(role: RoleDefinition<C>, options: RuntimeOptions): Promise<Runtime<C>> {
  const logger = options.logger ?? silentLogger();
  const registry = options.registry ?? createMetricsRegistry({ defaults: true });
  const metrics: RuntimeMetrics = runtimeMetrics(registry);
  const types = options.types ?? role.types;
  const provider = options.provider;
  const baseDir = provider.baseDir;
  const stores = new StoreSet(logger);
  /** The store URLs each generation's parts opened: a store closes when no live generation uses it. */
  const storesUsed = new WeakMap<Generation, ReadonlySet<string>>();
  /** Parses and validates text, the files it names included; throws ConfigError. */
  const parse = (text: string, label: string): C => {
    const config = role.parse(text, label, types, options.env);
    const issues = role.fileIssues?.(config, text, label, baseDir) ?? [];
    if (issues.length > 0) throw new ConfigError(issues);
    return config;
  };
  const compileAt = async (config: C, version: number, previous: Generation | undefined) => {
    const shared = stores.view(role.stores(config));
    const deps: CompileDeps = {
      logger,
      registry,
      metrics,
      baseDir,
      types,
      shared,
      previous,
      dispatcherFor: options.dispatcherFor,
      accessLog: settingsOf(role.settings(config), logger).accessLog,
    };
    const generation = await role.compile(config, version, deps);
    storesUsed.set(generation, shared.used);
    return generation;
  };

  let firstText: string;
  let first: Generation<C>;
  try {
    firstText = await provider.initial();
    const config = parse(firstText, provider.label);
    first = await compileAt(config, options.version ?? 1, undefined);
  } catch (err) {
    // Nothing may keep the process alive after a failed start (a store client, a watcher).
    await Promise.allSettled([provider.close?.(), stores.close()]);
    throw err;
  }

  const state: ActiveState = {
    current: first,
    settings: settingsOf(role.settings(first.config), logger),
    retired: new Set(),
    logger,
    metrics,
    closeRetired: (g) => {
      state.retired.delete(g);
      void release(g);
    },
  };
  metrics.configVersion.set(first.version);
  const current = () => state.current as Generation<C>;

  /** Closes a generation's parts, then the stores no live generation names any more. */
  const release = async (g: Generation) => {
    await closeGeneration(g, state.current).catch((err: unknown) =>
      logger.warn({ err: messageOf(err) }, 'closing a retired configuration failed'),
    );
    const live = [state.current, ...state.retired].flatMap((x) => [...(storesUsed.get(x) ?? [])]);
    await stores.retain(live);
  };

  const listeners = new ListenerSet({
    baseDir,
    logger,
    metrics,
    engineFor: (key) => new ListenerEngine(key, state),
  });

  let ready = false;
  let stopping = false;
  let lastReload: ReloadResult | undefined;
  let loadedAt = new Date().toISOString();
  let activeLabel = provider.label;
  let activeText = firstText;

  const reject = (label: string, errors: string[], at = new Date().toISOString()): ReloadResult => {
    const version = state.current.version;
    lastReload = { ok: false, version, label, at, errors };
    metrics.reloads.inc({ result: 'rejected' });
    logger.error(
      { errors, source: label },
      `configuration rejected, still serving version ${version}:\n${errors.join('\n')}`,
    );
    return lastReload;
  };

  const prepare = async (text: string, label = provider.label): Promise<Prepared<C>> => {
    const parsed = parse(text, label);
    const refused = role.checkReload?.(parsed, current().config, text) ?? [];
    if (refused.length > 0) throw new TrellisError('TRELLIS_E_CONFIG_INVALID', refused.join('\n'));
    const generation = await compileAt(parsed, state.current.version + 1, state.current);
    return { generation, text, label };
  };

  let stopReferenced: (() => void) | undefined;
  const watchReferenced = () => {
    stopReferenced?.();
    stopReferenced = undefined;
    if (options.watchReferenced === false || role.referencedFiles === undefined) return;
    const files = role.referencedFiles(current().config, baseDir);
    if (files.length === 0) return;
    stopReferenced = watchFiles(files, () => {
      logger.info({ source: activeLabel }, 'a file the configuration refers to changed: recompiling');
      void applyConfig(activeText, activeLabel);
    });
  };

  const commit = async (prepared: Prepared<C>): Promise<ReloadResult> => {
    const at = new Date().toISOString();
    const previous = state.current;
    const next = prepared.generation;
    const opened = await listeners.prepare(next, role.drainTimeout(previous.config as C));
    if (!opened.ok) {
      await closeGeneration(next, previous);
      return reject(prepared.label, [`a listener could not be opened: ${opened.error}`], at);
    }
    return swap(prepared, opened.commit, at);
  };

  /** The synchronous second half of a commit: from here new requests see the new generation. */
  const swap = (prepared: Prepared<C>, commitListeners: () => void, at: string): ReloadResult => {
    const previous = state.current;
    const next = prepared.generation;
    const warnings: string[] = [];
    if (JSON.stringify(role.admin(next.config)) !== JSON.stringify(role.admin(previous.config as C))) {
      warnings.push('admin: changes to the admin listener take effect after a restart');
    }
    // The swap: from here new requests see `next`; requests in flight keep `previous`.
    state.current = next;
    state.settings = settingsOf(role.settings(next.config), logger);
    commitListeners();
    if (previous.inFlight === 0) void release(previous);
    else {
      state.retired.add(previous);
      const timer = setTimeout(
        () => {
          if (state.retired.has(previous)) state.closeRetired(previous);
        },
        role.drainTimeout(previous.config as C),
      );
      timer.unref();
    }
    loadedAt = at;
    activeLabel = prepared.label;
    activeText = prepared.text;
    metrics.reloads.inc({ result: 'applied' });
    metrics.configVersion.set(next.version);
    lastReload = {
      ok: true,
      version: next.version,
      label: prepared.label,
      at,
      ...(warnings.length > 0 ? { warnings } : {}),
    };
    logger.info({ version: next.version, source: prepared.label, warnings }, 'configuration applied');
    watchReferenced();
    return lastReload;
  };

  let chain: Promise<unknown> = Promise.resolve();
  const serialised = <T>(run: () => Promise<T>): Promise<T> => {
    const result = chain.then(run, run);
    chain = result.catch(() => undefined);
    return result;
  };

  const applyConfig = (text: string, label = provider.label): Promise<ReloadResult> =>
    serialised(async () => {
      if (stopping) return reject(label, ['the runtime is stopping']);
      let prepared: Prepared<C>;
      try {
        prepared = await prepare(text, label);
      } catch (err) {
        return reject(label, errorsOf(err));
      }
      return commit(prepared);
    });

  const stage = (text: string, label = provider.label): Promise<StagedConfig> =>
    new Promise<StagedConfig>((resolveStaged) => {
      void serialised(async () => {
        const at = new Date().toISOString();
        const rejected = (result: ReloadResult): StagedConfig => ({
          ok: false,
          result,
          commit: () => result,
          abort: async () => {},
        });
        if (stopping) return resolveStaged(rejected(reject(label, ['the runtime is stopping'], at)));
        let prepared: Prepared<C>;
        try {
          prepared = await prepare(text, label);
        } catch (err) {
          return resolveStaged(rejected(reject(label, errorsOf(err), at)));
        }
        const previous = state.current;
        const opened = await listeners.prepare(prepared.generation, role.drainTimeout(previous.config as C));
        if (!opened.ok) {
          await closeGeneration(prepared.generation, previous);
          return resolveStaged(
            rejected(reject(label, [`a listener could not be opened: ${opened.error}`], at)),
          );
        }
        // The turn is held until the caller commits or aborts.
        let release!: () => void;
        const settled = new Promise<void>((r) => {
          release = r;
        });
        let done = false;
        resolveStaged({
          ok: true,
          version: prepared.generation.version,
          commit: () => {
            if (done) throw new TrellisError('TRELLIS_E_USAGE', 'a staged configuration is committed once');
            done = true;
            try {
              return swap(prepared, opened.commit, at);
            } finally {
              release();
            }
          },
          abort: async () => {
            if (done) return;
            done = true;
            try {
              await opened.abort();
              await closeGeneration(prepared.generation, previous);
            } finally {
              release();
            }
          },
        });
        await settled;
      });
    });

  const sink: ConfigSink = {
    apply: (text) => applyConfig(text, provider.label),
    fail: (error) => reject(provider.label, [error]),
  };
  const reload = (): Promise<ReloadResult> =>
    provider.reload ? provider.reload(sink) : applyConfig(activeText, activeLabel);

  const adminConfig = adminListen(options.admin, role.admin(first.config));
  let admin: AdminServer | undefined;
  const view: AdminViews = {
    ...(role.view ?? adminView)(current, () => ({
      version: state.current.version,
      source: activeLabel,
      loadedAt,
      lastReload,
    })),
    panels: () => [...(options.panels?.() ?? []), ...(role.panels?.(current) ?? []), ...state.current.panels],
    actions: () => [...(options.actions?.() ?? []), ...state.current.actions],
  };
  try {
    await listeners.open(first);
    if (adminConfig !== undefined) {
      admin = createAdminServer({
        registry,
        ready: () => ready && !stopping && listeners.allListening(state.current),
        readiness: async () => ({
          listeners: listeners.status(state.current),
          stores: await stores.health(),
        }),
        // Middlewares serving on a fallback (jwt on stale keys, a store breaker open).
        checks: () =>
          Object.fromEntries(
            [...state.current.checks].map(([name, health]) => [`middleware:${name}`, health()]),
          ),
        token: adminConfig.token,
        peers: adminConfig.peers,
        ...view,
      });
      const address = await admin.listen(adminConfig.host, adminConfig.port).catch((err: unknown) => {
        throw new TrellisError(
          'TRELLIS_E_LISTEN_FAILED',
          `cannot listen: ${listenFailure(`admin (${adminConfig.host}:${adminConfig.port})`, err)}`,
          { cause: err },
        );
      });
      listeners.ports.admin = address.port;
      logger.info({ address: `${address.address}:${address.port}` }, 'admin listening');
    }
  } catch (err) {
    await Promise.allSettled([listeners.closeAll(0), admin?.close()]);
    await closeGeneration(first, undefined);
    await Promise.allSettled([provider.close?.(), stores.close()]);
    if (err instanceof TrellisError) throw err;
    throw new TrellisError('TRELLIS_E_LISTEN_FAILED', `cannot listen: ${messageOf(err)}`, { cause: err });
  }

  provider.start?.(sink);
  watchReferenced();
  const onHup = () => void reload();
  if (options.sighup) process.on('SIGHUP', onHup);
  ready = true;

  return {
    ports: listeners.ports,
    sockets: listeners.sockets,
    get version() {
      return state.current.version;
    },
    get config() {
      return current().config;
    },
    get lastReload() {
      return lastReload;
    },
    get drainTimeout() {
      return role.drainTimeout(current().config);
    },
    applyConfig,
    reload,
    prepare,
    commit: (prepared) => serialised(() => commit(prepared)),
    stage,
    adminViews: () => view,
    async stop(deadlineMs) {
      if (stopping) return;
      stopping = true;
      stopReferenced?.();
      if (options.sighup) process.off('SIGHUP', onHup);
      await provider.close?.();
      await chain;
      await listeners.closeAll(deadlineMs);
      await admin?.close();
      const all = [state.current, ...state.retired];
      state.retired.clear();
      await Promise.allSettled(all.map((g) => closeGeneration(g, undefined)));
      await stores.close();
    },
  };
}
