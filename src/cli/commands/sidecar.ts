import { isTrellisError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';
import { parseHostPort } from './gateway.js';

const usage = `usage: trellis sidecar -c sidecar.yaml [--admin host:port] [--no-admin] [--log-level info] -- <app command…>

Runs the app beside a sidecar, in this order: the platform API on localhost (state, pub/sub,
locks, configuration, secrets), then the app (with TRELLIS_SIDECAR_URL, TRELLIS_SIDECAR_TOKEN and
PORT in its environment), then, once the app is healthy, the inbound listener that proxies to it
through the file's middlewares. A crashed app is restarted by app.restart; an app that exits 0
ends the sidecar (job mode). SIGTERM/SIGINT: stop accepting inbound, drain it, stop deliveries,
SIGTERM the app (SIGKILL after app.stopTimeout), then exit with the app's status.

options:
  -c, --config FILE     the sidecar file (required)
  --admin HOST:PORT     admin listener address (default from the file, else 127.0.0.1:9902)
  --no-admin            no admin listener
  --log-level LEVEL     trace, debug, info, warn, error (default info, or $TRELLIS_LOG_LEVEL)
  --no-watch            do not watch the file (SIGHUP still reloads)`;

const options = {
  config: { type: 'string', short: 'c' },
  admin: { type: 'string' },
  'no-admin': { type: 'boolean' },
  'log-level': { type: 'string' },
  'no-watch': { type: 'boolean' },
} as const;

async function run(argv: string[]): Promise<number> {
  const split = argv.indexOf('--');
  if (split === -1)
    throw usageError(
      'give the app command after --, like: trellis sidecar -c sidecar.yaml -- python3 app.py',
    );
  const command = argv.slice(split + 1);
  if (command.length === 0) throw usageError('the app command after -- is empty');
  const { values } = parseCommandArgs(argv.slice(0, split), options, false);
  if (!values.config) throw usageError('name the sidecar file with -c FILE');
  const logger = createLogger({
    name: 'sidecar',
    ...(values['log-level'] ? { level: values['log-level'] } : {}),
  });
  // Signals are handled from the first moment: one during start-up stops the app it started.
  const aborted = new AbortController();
  let sidecar: Awaited<ReturnType<typeof startSidecar>> | undefined;
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger.warn({ signal }, 'second signal: killing the app and exiting');
      sidecar?.app.killNow();
      process.exit(1);
    }
    signalled = true;
    logger.info({ signal }, 'stopping: draining inbound, then the app');
    if (sidecar === undefined) aborted.abort();
    else void sidecar.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    sidecar = await startSidecar({
      file: values.config,
      command,
      logger,
      signal: aborted.signal,
      watch: !values['no-watch'],
      ...(values['no-admin']
        ? { admin: false as const }
        : values.admin
          ? { admin: parseHostPort(values.admin) }
          : {}),
    });
  } catch (err) {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    if (aborted.signal.aborted) return 143;
    if (isTrellisError(err) && err.code === 'TRELLIS_E_SIDECAR_APP_UNHEALTHY') {
      // Exit with the app's own status when it exited by itself (a failed job), else 1.
      process.stderr.write(`${err.code}: ${err.message}\n`);
      logger.flush?.();
      return Number(err.details?.exitCode ?? 1);
    }
    throw err;
  }
  logger.info({ ports: sidecar.ports, app: sidecar.app.name }, 'sidecar started');
  const code = await sidecar.done;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  logger.info({ code }, 'sidecar stopped');
  logger.flush?.();
  return code;
}

export const sidecarCommand: Command = {
  name: 'sidecar',
  summary: 'run an app beside a sidecar: supervision, inbound offloading, a platform API on localhost',
  usage,
  run,
};
