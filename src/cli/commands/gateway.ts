import { readConfigText } from '../../core/config.js';
import { drainOnSignals } from '../../core/lifecycle.js';
import { createLogger } from '../../core/logger.js';
import { startGateway } from '../../gateway/gateway.js';
import { configStoreProvider } from '../../runtime/providers/config-store.js';
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

async function run(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, options, false);
  if (!values.config && !values['config-from']) {
    throw usageError('name the gateway file with -c FILE (or --config-from URL#key)');
  }
  if (values.config && values['config-from']) throw usageError('give -c FILE or --config-from, not both');
  // Say plainly that the file is missing or unreadable, as `trellis validate` does, before anything starts.
  if (values.config) readConfigText(values.config);
  const logger = createLogger({
    name: 'gateway',
    ...(values['log-level'] ? { level: values['log-level'] } : {}),
  });
  // The store's provider belongs to the gateway from here: a failed start closes it too, so the
  // process exits as it does with -c FILE instead of waiting on the store client.
  const gateway = await startGateway({
    ...(values['config-from']
      ? { provider: configStoreProvider(values['config-from'], { logger }) }
      : { file: values.config! }),
    logger,
    sighup: true,
    watch: !values['no-watch'],
    ...(values['no-admin']
      ? { admin: false as const }
      : values.admin
        ? { admin: parseHostPort(values.admin) }
        : {}),
  });
  logger.info({ ports: gateway.ports, version: gateway.version }, 'gateway started');
  await new Promise<void>((resolve) => {
    drainOnSignals([gateway], {
      logger,
      drainMs: gateway.drainTimeout,
      exit: (code) => {
        process.exitCode = code;
        logger.flush?.();
        resolve();
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
