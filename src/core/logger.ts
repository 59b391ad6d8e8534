import pino, { type Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { createLogDestination, type LogDestination, type LogDestinationOptions } from './log-destination.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: string;
  /** Human-readable output; defaults to true when stderr is a terminal. */
  pretty?: boolean;
  name?: string;
  /** Buffering of the JSON output (not used when pretty). */
  destination?: LogDestinationOptions;
}

const destinations = new WeakMap<Logger, LogDestination>();

/**
 * JSON logs to stderr (readable when stderr is a terminal); stdout stays free for command output.
 * JSON lines are buffered and written asynchronously (see log-destination.ts): call
 * `flushLogger` before exiting.
 */
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
  const destination = createLogDestination({ fd: 2, ...options.destination });
  const logger = pino({ level, base }, destination.stream);
  destinations.set(logger, destination);
  return logger;
}

/** Writes what `logger` still holds, waiting at most `deadlineMs`. */
export async function flushLogger(logger: Logger, deadlineMs = 5_000): Promise<void> {
  const destination = destinations.get(logger);
  if (destination) await destination.flush(deadlineMs);
  else logger.flush?.();
}

/** Registers `trellis_log_lines_dropped_total` for a logger made by createLogger. */
export function logMetrics(registry: Registry, logger: Logger): void {
  const destination = destinations.get(logger);
  if (destination === undefined || registry.getSingleMetric('trellis_log_lines_dropped_total')) return;
  let counted = 0;
  new Counter({
    name: 'trellis_log_lines_dropped_total',
    help: 'Log lines (access log included) dropped because the log destination could not keep up.',
    registers: [registry],
    collect() {
      const now = destination.dropped;
      if (now > counted) this.inc(now - counted);
      counted = now;
    },
  });
}

/** A logger that drops everything: for tests and library users who bring none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
