import { startAmbassador } from '../../ambassador/ambassador.js';
import { drainOnSignals } from '../../core/lifecycle.js';
import { createLogger } from '../../core/logger.js';
import { configStoreProvider } from '../../runtime/providers/config-store.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';
import { parseHostPort } from './gateway.js';

const usage = `usage: trellis ambassador -c ambassador.yaml [--admin host:port] [--no-admin] [--log-level info]

Runs an ambassador: an outbound proxy beside your client. Each remote service in the file gets a
loopback listener (or a host on the shared one); the client calls http://127.0.0.1:PORT/… and the
ambassador applies deadlines, retries with a budget, circuit breakers and a bulkhead, and picks an
upstream. The file is watched and reloaded like the gateway's (SIGHUP too); SIGTERM/SIGINT drain.

options:
  -c, --config FILE     the ambassador file (required)
  --admin HOST:PORT     admin listener address (default from the file, else 127.0.0.1:9901)
  --no-admin            no admin listener
  --log-level LEVEL     trace, debug, info, warn, error (default info, or $TRELLIS_LOG_LEVEL)
  --no-watch            do not watch the file (SIGHUP still reloads)
  --config-from URL#KEY[@LABEL]
                        take the configuration from the config store instead of a file`;

const options = {
  config: { type: 'string', short: 'c' },
  admin: { type: 'string' },
  'no-admin': { type: 'boolean' },
  'log-level': { type: 'string' },
  'no-watch': { type: 'boolean' },
  'config-from': { type: 'string' },
} as const;

async function run(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, options, false);
  if (!values.config && !values['config-from']) {
    throw usageError('name the ambassador file with -c FILE (or --config-from URL#key)');
  }
  if (values.config && values['config-from']) throw usageError('give -c FILE or --config-from, not both');
  const logger = createLogger({
    name: 'ambassador',
    ...(values['log-level'] ? { level: values['log-level'] } : {}),
  });
  const ambassador = await startAmbassador({
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
  // A listener on a Unix socket has no port: it is listed under `sockets` with its path.
  const sockets = Object.keys(ambassador.sockets).length === 0 ? {} : { sockets: ambassador.sockets };
  logger.info({ ports: ambassador.ports, ...sockets, version: ambassador.version }, 'ambassador started');
  await new Promise<void>((resolve) => {
    drainOnSignals([ambassador], {
      logger,
      drainMs: ambassador.drainTimeout,
      exit: (code) => {
        process.exitCode = code;
        logger.flush?.();
        resolve();
      },
    });
  });
  return Number(process.exitCode ?? 0);
}

export const ambassadorCommand: Command = {
  name: 'ambassador',
  summary: 'run an outbound proxy beside a client (deadlines, retry budgets, breakers, bulkheads)',
  usage,
  run,
};
