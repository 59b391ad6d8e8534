import pino, { type Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { TrellisError } from './errors.js';
import { createLogDestination, type LogDestination, type LogDestinationOptions } from './log-destination.js';
import { didYouMean } from './suggest.js';

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
/** Loggers made here: their line format is pino's default, so a line can be written ready-made. */
const plain = new WeakSet<Logger>();

/**
 * JSON logs to stderr (readable when stderr is a terminal); stdout stays free for command output.
 * JSON lines are buffered and written asynchronously (see log-destination.ts): call
 * `flushLogger` before exiting.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = checkLevel(options.level, process.env.TRELLIS_LOG_LEVEL);
  const pretty = options.pretty ?? process.stderr.isTTY === true;
  const base = { name: options.name ?? 'trellis' };
  if (pretty) {
    const logger = pino({
      level,
      base,
      transport: {
        target: 'pino-pretty',
        // One line per entry: a multi-line access log entry per request scrolls everything else away.
        options: { destination: 2, colorize: true, ignore: 'pid,hostname', singleLine: true },
      },
    });
    plain.add(logger);
    return logger;
  }
  const destination = createLogDestination({ fd: 2, ...options.destination });
  const logger = pino({ level, base }, destination.stream);
  destinations.set(logger, destination);
  plain.add(logger);
  return logger;
}

/**
 * Writes what `logger` still holds, waiting at most `deadlineMs`. False when lines were still
 * held at the deadline: a write is stuck, and the caller should `process.exit()` rather than
 * wait for it.
 */
export async function flushLogger(logger: Logger, deadlineMs = 5_000): Promise<boolean> {
  const destination = destinations.get(logger);
  if (destination) return destination.flush(deadlineMs);
  logger.flush?.();
  return true;
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

type Internals = Record<symbol, unknown>;

/**
 * For a logger made by createLogger: a function that writes one line at `level` whose members
 * after `time` and the logger's bindings are `fields` (`,"key":value…`, already JSON), exactly
 * as pino would have written them. Undefined for any other logger (a library user's, with its
 * own formatters or serializers): log through it as usual. Why: pino's generic serialisation of
 * an object costs several microseconds per line, the gateway's access log writes one per
 * request, and its members are known in advance.
 */
export function lineWriter(logger: Logger, level: string): ((fields: string) => void) | undefined {
  if (!plain.has(logger)) return undefined;
  const internals = logger as unknown as Internals;
  const levelNumber = logger.levels.values[level];
  const head = (internals[pino.symbols.lsCacheSym] as Record<number, string> | undefined)?.[levelNumber!];
  const chindings = internals[pino.symbols.chindingsSym];
  const stream = internals[pino.symbols.streamSym] as { write(line: string): unknown } | undefined;
  if (head === undefined || typeof chindings !== 'string' || stream === undefined) return undefined;
  return (fields) => {
    stream.write(`${head},"time":${Date.now()}${chindings}${fields}}\n`);
  };
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
