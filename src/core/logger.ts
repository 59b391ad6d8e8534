import pino, { type Logger } from 'pino';
import { TrellisError } from './errors.js';
import { didYouMean } from './suggest.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: string;
  /** Human-readable output; defaults to true when stderr is a terminal. */
  pretty?: boolean;
  name?: string;
}

/** JSON logs to stderr (readable when stderr is a terminal); stdout stays free for command output. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = checkLevel(options.level, process.env.TRELLIS_LOG_LEVEL);
  const pretty = options.pretty ?? process.stderr.isTTY === true;
  const base = { name: options.name ?? 'trellis' };
  if (pretty) {
    return pino({
      level,
      base,
      transport: {
        target: 'pino-pretty',
        options: { destination: 2, colorize: true, ignore: 'pid,hostname' },
      },
    });
  }
  return pino({ level, base }, pino.destination({ dest: 2, sync: false }));
}

/** The levels a logger accepts, quietest last. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** The level to use; one that pino does not know is TRELLIS_E_LOG_LEVEL_INVALID, saying where it came from. */
function checkLevel(given: string | undefined, fromEnv: string | undefined): string {
  const level = given ?? fromEnv ?? 'info';
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level;
  const where = given === undefined ? ' (from $TRELLIS_LOG_LEVEL)' : '';
  throw new TrellisError(
    'TRELLIS_E_LOG_LEVEL_INVALID',
    `log level "${level}"${where} is not a level${didYouMean(level, LOG_LEVELS)}: use one of ${LOG_LEVELS.join(', ')}`,
  );
}

/** A logger that drops everything: for tests and library users who bring none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
