import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: string;
  /** Human-readable output; defaults to true when stderr is a terminal. */
  pretty?: boolean;
  name?: string;
}

/** JSON logs to stderr (readable when stderr is a terminal); stdout stays free for command output. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.TRELLIS_LOG_LEVEL ?? 'info';
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

/** A logger that drops everything: for tests and library users who bring none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
