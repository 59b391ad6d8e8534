import { readFileSync } from 'node:fs';
import { drainOnSignals } from '../../core/lifecycle.js';
import { BUFFERED } from '../../core/log-destination.js';
import { createLogger, flushLogger, logMetrics } from '../../core/logger.js';
import { createMetricsRegistry } from '../../core/metrics.js';
import { parseGatewayConfig, startGateway } from '../../gateway/gateway.js';
import { startGatewayCluster, workerCount } from '../../runtime/workers.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';
import { type FollowedDocument, followDocument } from './config.js';

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

/** The file's text, or '' when it cannot be read (startGateway then reports that with its code). */
function readIfPossible(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

async function run(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, options, false);
  if (!values.config && !values['config-from']) {
    throw usageError('name the gateway file with -c FILE (or --config-from URL#key)');
  }
  if (values.config && values['config-from']) throw usageError('give -c FILE or --config-from, not both');
  // Buffered: the access log must not cost a write per request (flushed on the way out).
  const logger = createLogger({
    name: 'gateway',
    destination: BUFFERED,
    ...(values['log-level'] ? { level: values['log-level'] } : {}),
  });
  const source: FollowedDocument | undefined = values['config-from']
    ? await followDocument(values['config-from'], logger)
    : undefined;
  const common = {
    ...(source ? { text: source.text, label: source.label } : { file: values.config }),
    logger,
    sighup: true,
    watch: !values['no-watch'],
    ...(values['no-admin']
      ? { admin: false as const }
      : values.admin
        ? { admin: parseHostPort(values.admin) }
        : {}),
  };
  // `workers:` decides between one process and a cluster; the file is parsed again to run it.
  const workers = workerCount(
    parseGatewayConfig(source?.text ?? readIfPossible(values.config!), source?.label ?? values.config!)
      .workers,
  );
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
  source?.follow((text) => gateway.applyConfig(text, source.label));
  await new Promise<void>((resolve) => {
    drainOnSignals([gateway, ...(source ? [{ stop: () => source.close() }] : [])], {
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
