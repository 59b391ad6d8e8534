import { readConfigText } from '../../core/config.js';
import { drainOnSignals } from '../../core/lifecycle.js';
import { BUFFERED } from '../../core/log-destination.js';
import { createLogger, flushLogger, logMetrics } from '../../core/logger.js';
import { createMetricsRegistry } from '../../core/metrics.js';
import { parseGatewayConfig, startGateway } from '../../gateway/gateway.js';
import { configStoreProvider } from '../../runtime/providers/config-store.js';
import { fileProvider } from '../../runtime/providers/file.js';
import type { ConfigProvider } from '../../runtime/providers/types.js';
import { startGatewayCluster, workerCount } from '../../runtime/workers.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';

const usage = `usage: trellis gateway -c gateway.yaml [--admin host:port] [--no-admin] [--log-level info]

Runs the gateway described by the file: listeners, routes, services and middlewares. The file
is watched: a valid change is swapped in atomically, an invalid one is logged with the same
messages as \`trellis validate\` and the last good configuration keeps serving. SIGHUP reloads
too; SIGTERM/SIGINT drain in-flight requests (drainTimeout in the file) and exit 0.

options:
  -c, --config FILE     the gateway file (required)
  --admin HOST:PORT     admin listener address (default from the file, else 127.0.0.1:9901)
  --no-admin            no admin listener
  --log-level LEVEL     trace, debug, info, warn, error (default info, or $TRELLIS_LOG_LEVEL)
  --no-watch            do not watch the file (SIGHUP still reloads)
  --config-from URL#KEY[@LABEL]
                        take the configuration from the config store instead of a file: a
                        \`trellis config serve\` URL (token in $TRELLIS_CONFIG_TOKEN) or a store
                        URL; each change is validated, compiled and swapped like a file change`;

const options = {
  config: { type: 'string', short: 'c' },
  admin: { type: 'string' },
  'no-admin': { type: 'boolean' },
  'log-level': { type: 'string' },
  'no-watch': { type: 'boolean' },
  'config-from': { type: 'string' },
} as const;

/** `host:port` or `:port` or `port`. */
export function parseHostPort(value: string): { host: string; port: number } {
  const m = /^(?:(.*):)?(\d{1,5})$/.exec(value);
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw usageError(`--admin ${value}: write host:port, like 127.0.0.1:9901`);
  return { host: m[1] || '127.0.0.1', port };
}

/**
 * `provider` with its first text already read: the CLI reads it once to learn `workers:`, and a
 * configuration-store provider must not open a second client for the same first text.
 */
function primed(provider: ConfigProvider, text: string): ConfigProvider {
  return {
    get label() {
      return provider.label;
    },
    get baseDir() {
      return provider.baseDir;
    },
    initial: async () => text,
    ...(provider.start ? { start: (sink) => provider.start!(sink) } : {}),
    ...(provider.reload ? { reload: (sink) => provider.reload!(sink) } : {}),
    ...(provider.close ? { close: () => provider.close!() } : {}),
  };
}

async function run(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, options, false);
  if (!values.config && !values['config-from']) {
    throw usageError('name the gateway file with -c FILE (or --config-from URL#key)');
  }
  if (values.config && values['config-from']) throw usageError('give -c FILE or --config-from, not both');
  // Say plainly that the file is missing or unreadable, as `trellis validate` does, before anything starts.
  if (values.config) readConfigText(values.config);
  // Buffered: the access log must not cost a write per request (flushed on the way out).
  const logger = createLogger({
    name: 'gateway',
    destination: BUFFERED,
    ...(values['log-level'] ? { level: values['log-level'] } : {}),
  });
  // The store's provider belongs to the gateway from here: a failed start closes it too, so the
  // process exits as it does with -c FILE instead of waiting on the store client.
  const source: ConfigProvider = values['config-from']
    ? configStoreProvider(values['config-from'], { logger })
    : fileProvider(values.config!, { watch: !values['no-watch'] });
  // `workers:` decides between one process and a cluster. A first text that cannot be read or
  // parsed starts one process, which reports it as always.
  const firstText = await source.initial().catch(() => undefined);
  let workers = 1;
  if (firstText !== undefined) {
    try {
      workers = workerCount(parseGatewayConfig(firstText, source.label).workers);
    } catch {
      workers = 1;
    }
  }
  const provider = firstText === undefined ? source : primed(source, firstText);
  const common = {
    provider,
    logger,
    sighup: true,
    watch: !values['no-watch'],
    ...(values['no-admin']
      ? { admin: false as const }
      : values.admin
        ? { admin: parseHostPort(values.admin) }
        : {}),
  };
  let gateway: Awaited<ReturnType<typeof startGatewayCluster>> | Awaited<ReturnType<typeof startGateway>>;
  if (workers > 1) {
    gateway = await startGatewayCluster({
      ...common,
      workers,
      ...(values['log-level'] ? { logLevel: values['log-level'] } : {}),
    });
  } else {
    const registry = createMetricsRegistry({ defaults: true });
    logMetrics(registry, logger);
    gateway = await startGateway({ ...common, registry });
  }
  logger.info({ ports: gateway.ports, version: gateway.version }, 'gateway started');
  await new Promise<void>((resolve) => {
    drainOnSignals([gateway], {
      logger,
      drainMs: gateway.drainTimeout,
      exit: (code) => {
        process.exitCode = code;
        // Every access line of the drained requests is written before the process ends; a
        // destination that cannot take them (a pipe nobody reads) must not keep it alive.
        void flushLogger(logger, 5_000).then((flushed) => (flushed ? resolve() : process.exit(code)));
      },
    });
  });
  return Number(process.exitCode ?? 0);
}

export const gatewayCommand: Command = {
  name: 'gateway',
  summary: 'run an API gateway from a YAML file',
  usage,
  run,
};
