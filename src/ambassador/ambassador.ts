import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { ConfigError, parseConfig } from '../core/config.js';
import { serviceTlsIssues, upstreamTlsFiles } from '../http/upstream/index.js';
import { adminView } from '../runtime/admin-view.js';
import type { Generation } from '../runtime/compile.js';
import { providerFromOptions } from '../runtime/providers/from-options.js';
import type { ConfigProvider, ReloadResult } from '../runtime/providers/types.js';
import type { TypeRegistry } from '../runtime/registry.js';
import { type RoleDefinition, type Runtime, startRuntime } from '../runtime/runtime.js';
import { ambassadorTypes, compileAmbassador, generationParts } from './compile.js';
import { ambassadorPanel } from './panel.js';
import { type AmbassadorConfig, ambassadorSchema } from './schema.js';

/** Parses and validates ambassador YAML; an empty file (no `remotes:`) is refused. */
export function parseAmbassadorConfig(
  text: string,
  label: string,
  env?: Record<string, string | undefined>,
): AmbassadorConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch {
    // Not YAML: parseConfig reports it with line and column.
    return parseConfig(text, ambassadorSchema, label, env === undefined ? {} : { env });
  }
  if (raw === null || typeof raw !== 'object' || !('remotes' in raw)) {
    throw new ConfigError([
      {
        file: label,
        line: 1,
        column: 1,
        path: '',
        message: 'the file has no remotes: (empty or truncated?): an ambassador needs at least one remote',
      },
    ]);
  }
  return parseConfig(text, ambassadorSchema, label, env === undefined ? {} : { env });
}

/**
 * The ambassador role: an outbound proxy beside the client. Each remote service becomes a pool
 * (static or discovered upstreams, balancing, ejection) behind a loopback listener whose one route runs the
 * ambassador's policies (src/ambassador/call.ts).
 */
export const ambassadorRole: RoleDefinition<AmbassadorConfig> = {
  name: 'ambassador',
  types: ambassadorTypes,
  parse: (text, label, _types, env) => parseAmbassadorConfig(text, label, env),
  compile: compileAmbassador,
  settings: (c) => ({
    trustedProxies: [],
    // The client's path goes to the remote as it was written.
    encodedSlashes: 'keep',
    accessLog: c.accessLog,
  }),
  admin: (c) => (c.admin.enabled ? c.admin : undefined),
  drainTimeout: (c) => c.drainTimeout,
  stores: (c) => c.stores,
  // A remote's TLS files (CA, client certificate): a rotated one is read on the next reload.
  referencedFiles: (c, baseDir) =>
    Object.values(c.remotes).flatMap((r) => upstreamTlsFiles(r.service.tls, baseDir).map((f) => f.file)),
  fileIssues: (c, text, label, baseDir) =>
    serviceTlsIssues(
      Object.entries(c.remotes).map(([name, r]) => ({
        path: ['remotes', name, 'service'],
        tls: r.service.tls,
      })),
      text,
      label,
      baseDir,
    ),
  view(current, meta) {
    return { ...adminView(current, meta), services: () => ({ services: remotesView(current()) }) };
  },
  panels: (current) => [ambassadorPanel(() => remotesView(current()))],
};

/**
 * Each remote's pool with its policies, each upstream's breaker beside its health, ejection and
 * source, and the remote's hedges (sent, won, refused by the budget) when it hedges.
 */
function remotesView(generation: Generation<AmbassadorConfig>) {
  const parts = generationParts.get(generation);
  return [...generation.services.values()].map((p) => {
    const status = p.status();
    const states = parts?.breakers.get(p.name)?.status() ?? {};
    const remote = generation.config.remotes[p.name];
    const hedges = remote?.hedge === undefined ? undefined : parts?.metrics.get(p.name)?.hedges();
    return {
      ...status,
      policies: policiesOf(remote),
      upstreams: status.upstreams.map((u) => ({ ...u, breaker: states[u.id] ?? 'closed' })),
      ...(hedges === undefined ? {} : { hedges: { ...hedges } }),
    };
  });
}

/** The policies of a remote in the order they apply, as the admin API shows them. */
function policiesOf(remote: AmbassadorConfig['remotes'][string] | undefined): unknown[] {
  if (remote === undefined) return [];
  return [
    { policy: 'deadline', timeout: remote.timeout },
    { policy: 'bulkhead', ...remote.bulkhead },
    { policy: 'bodyBuffer', maxBodySize: remote.maxBodySize },
    { policy: 'breaker', ...remote.breaker },
    { policy: 'perTryTimeout', perTryTimeout: remote.perTryTimeout, deadlineHeader: remote.deadlineHeader },
    ...(remote.hedge === undefined ? [] : [{ policy: 'hedge', ...remote.hedge }]),
    {
      policy: 'retry',
      ...remote.service.retry,
      retryNonIdempotent: remote.retryNonIdempotent,
    },
  ];
}

export interface StartAmbassadorOptions {
  /** An ambassador YAML file; watched for changes unless `watch: false`. */
  file?: string;
  /** YAML text instead of a file (tests, embedding). */
  text?: string;
  /** Where configurations come from instead of `file`/`text`. */
  provider?: ConfigProvider;
  label?: string;
  /** Middleware and handler types (default: the gateway's plus `remote`). */
  types?: TypeRegistry;
  /** Overrides `admin:` from the file; `false` disables it. */
  admin?: { host: string; port: number } | false;
  logger?: Logger;
  registry?: Registry;
  watch?: boolean;
  sighup?: boolean;
  env?: Record<string, string | undefined>;
}

/** A running ambassador. */
export interface Ambassador {
  /** Bound ports: one per remote with its own listener, `main` for the shared one, and `admin`. */
  readonly ports: Readonly<Record<string, number>>;
  /** The Unix socket paths of the listeners on one (`listen: unix:…`), by the same keys. */
  readonly sockets: Readonly<Record<string, string>>;
  readonly version: number;
  readonly lastReload: ReloadResult | undefined;
  readonly drainTimeout: number;
  applyConfig(text: string, label: string): Promise<ReloadResult>;
  reload(): Promise<ReloadResult>;
  stop(deadlineMs: number): Promise<void>;
}

/** Starts an ambassador: the ambassador role on the shared runtime. */
export async function startAmbassador(options: StartAmbassadorOptions): Promise<Ambassador> {
  const runtime: Runtime<AmbassadorConfig> = await startRuntime(ambassadorRole, {
    provider: providerFromOptions(options, 'startAmbassador'),
    types: options.types,
    admin: options.admin,
    logger: options.logger,
    registry: options.registry,
    sighup: options.sighup,
    watchReferenced: options.watch !== false,
    env: options.env,
  });
  return {
    ports: runtime.ports,
    sockets: runtime.sockets,
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
    reload: () => runtime.reload(),
    stop: (deadlineMs) => runtime.stop(deadlineMs),
  };
}
