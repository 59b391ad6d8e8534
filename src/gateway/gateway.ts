import { isAbsolute, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import type { AdminViews } from '../admin/server.js';
import { ConfigError, parseConfig, shield } from '../core/config.js';
import { serviceTlsIssues, upstreamTlsFiles } from '../http/upstream/index.js';
import { providerFromOptions } from '../runtime/providers/from-options.js';
import type { ConfigProvider, ReloadResult } from '../runtime/providers/types.js';
import type { TypeRegistry } from '../runtime/registry.js';
import {
  type RoleDefinition,
  type Runtime,
  type RuntimeOptions,
  type StagedConfig,
  startRuntime,
} from '../runtime/runtime.js';
import { compileGateway } from './compile.js';
import { type GatewayConfig, gatewaySchema } from './schema.js';
import { gatewayTypes } from './types.js';

export type { ReloadResult } from '../runtime/providers/types.js';

export interface StartGatewayOptions {
  /** A gateway YAML file; watched for changes unless `watch: false`. */
  file?: string;
  /** YAML text instead of a file (tests, embedding). */
  text?: string;
  /**
   * Where configurations come from, instead of `file`/`text`: `memoryProvider(object)`,
   * `configStoreProvider('http://config:7070#shop/gateway@prod')`, or your own ConfigProvider.
   */
  provider?: ConfigProvider;
  /** Name for `text` in messages; defaults to the file path or `<inline>`. */
  label?: string;
  /** Handler and middleware types (default `gatewayTypes`; `extendTypes(gatewayTypes, …)` adds yours). */
  types?: TypeRegistry;
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
  /** Version number of the first configuration (default 1; a replacement worker starts at its cluster's). */
  version?: number;
  /** Dispatchers for origins reached another way than TCP (`trellis host`'s worker channels). */
  dispatcherFor?: RuntimeOptions['dispatcherFor'];
}

/** A configuration staged on a gateway (the runtime's `StagedConfig`): `commit()` or `abort()`. */
export type PreparedConfig = StagedConfig;

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
  /**
   * The first half of applyConfig: everything but the swap, new listeners bound (workers prepare
   * everywhere, then commit everywhere). Other reloads wait until it is committed or aborted.
   */
  prepareConfig(text: string, label: string): Promise<PreparedConfig>;
  /** What /admin/routes, /admin/services and /admin/config show (a cluster's primary asks a worker). */
  adminViews(): AdminViews;
  /** Reads the configuration again from where it came from (the file, the store) and applies it. */
  reload(): Promise<ReloadResult>;
  /** Stops accepting, lets in-flight requests finish within `deadlineMs`, closes everything. */
  stop(deadlineMs: number): Promise<void>;
}

/** The sections that make a gateway file; a file with none of them is empty or truncated. */
const CONTENT_SECTIONS = ['listen', 'routes', 'frontends'] as const;

/**
 * Parses and validates gateway YAML; throws ConfigError with every problem. An empty file (or one
 * with none of listen:, routes:, frontends:) is refused: a truncated write must never become a
 * gateway that serves nothing on the default port.
 */
export function parseGatewayConfig(
  text: string,
  label: string,
  env?: Record<string, string | undefined>,
  types: TypeRegistry = gatewayTypes,
): GatewayConfig {
  const config = parseConfig(text, gatewaySchema(types), label, env === undefined ? {} : { env });
  // Only the top-level keys matter here; shielded so `${NAME}` inside a flow map parses.
  const raw = parseYaml(shield(text).shielded) as unknown;
  const sections = raw !== null && typeof raw === 'object' ? Object.keys(raw) : [];
  if (!CONTENT_SECTIONS.some((s) => sections.includes(s))) {
    throw new ConfigError([
      {
        file: label,
        line: 1,
        column: 1,
        path: '',
        message:
          sections.length === 0
            ? 'the file is empty: a gateway needs listen: and routes: (or frontends:)'
            : 'the file has no listen:, routes: or frontends: (truncated?): a gateway needs them',
      },
    ]);
  }
  return config;
}

/** Files the configuration refers to whose change needs a recompile (a `jwksFile`, …). */
export function gatewayReferencedFiles(config: GatewayConfig, baseDir: string): string[] {
  const files: string[] = [];
  // Certificates are not listed: the TLS listener watches and reloads its own (tls.reload).
  const walk = (value: unknown) => {
    if (value === null || typeof value !== 'object') return;
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === 'string' && /File$/.test(k)) files.push(isAbsolute(v) ? v : resolve(baseDir, v));
      else walk(v);
    }
  };
  walk(config.middlewares);
  walk(config.routes);
  walk(config.frontends);
  // Upstream TLS files: a rotated CA or client certificate makes new pools on the recompile.
  for (const def of Object.values(config.services ?? {})) {
    for (const f of upstreamTlsFiles(def.tls, baseDir)) files.push(f.file);
  }
  return files;
}

/**
 * The gateway role: `gateway.yaml` compiled into a main listener (plus one per frontend with its
 * own `listen:`), routes with their middleware chains, and service pools.
 */
export const gatewayRole: RoleDefinition<GatewayConfig> = {
  name: 'gateway',
  types: gatewayTypes,
  parse: (text, label, types, env) => parseGatewayConfig(text, label, env, types),
  compile: compileGateway,
  settings: (c) => ({
    trustedProxies: c.trustedProxies,
    encodedSlashes: c.encodedSlashes,
    accessLog: c.accessLog,
  }),
  admin: (c) => (c.admin.enabled ? c.admin : undefined),
  drainTimeout: (c) => c.drainTimeout,
  stores: (c) => c.stores,
  referencedFiles: gatewayReferencedFiles,
  fileIssues: (c, text, label, baseDir) =>
    serviceTlsIssues(
      Object.entries(c.services).map(([name, def]) => ({ path: ['services', name], tls: def.tls })),
      text,
      label,
      baseDir,
    ),
  checkReload(next, current, text) {
    // A reload must not move the listener because `listen:` went missing (a half-written file).
    const raw = parseYaml(shield(text).shielded) as Record<string, unknown> | null;
    if (raw !== null && typeof raw === 'object' && !('listen' in raw)) {
      if (JSON.stringify(next.listen) !== JSON.stringify(current.listen)) {
        return [
          `listen: is missing: the gateway keeps listening on ${current.listen.host}:${current.listen.port}; write listen: to move it`,
        ];
      }
    }
    return [];
  },
};

/**
 * Starts a gateway: the gateway role on the shared runtime, fed by a file (watched), a text, or
 * any provider (`memoryProvider`, `configStoreProvider`).
 */
export async function startGateway(options: StartGatewayOptions): Promise<Gateway> {
  const runtime: Runtime<GatewayConfig> = await startRuntime(gatewayRole, {
    provider: providerFromOptions(options, 'startGateway'),
    types: options.types,
    admin: options.admin,
    logger: options.logger,
    registry: options.registry,
    sighup: options.sighup,
    // --no-watch: nothing is watched, the gateway file nor the files it refers to.
    watchReferenced: options.watch !== false,
    env: options.env,
    version: options.version,
    dispatcherFor: options.dispatcherFor,
  });
  return {
    ports: runtime.ports,
    get version() {
      return runtime.version;
    },
    get lastReload() {
      return runtime.lastReload;
    },
    get drainTimeout() {
      return runtime.drainTimeout;
    },
    applyConfig: (text, label) => runtime.applyConfig(text, label),
    prepareConfig: (text, label) => runtime.stage(text, label),
    adminViews: () => runtime.adminViews(),
    reload: () => runtime.reload(),
    stop: (deadlineMs) => runtime.stop(deadlineMs),
  };
}
