import { drainOnSignals } from '../../core/lifecycle.js';
import { createLogger } from '../../core/logger.js';
import { startHost, type WorkloadStatus } from '../../host/host.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';
import { parseHostPort } from './gateway.js';

const usage = `usage: trellis host -c host.yaml [--admin host:port] [--no-admin] [--log-level info] [--no-watch]
       trellis host status [--admin host:port] [--json]

Runs the workloads the file declares (http, consumer, schedule, taskPool) in one process, each
in its own worker thread or child process, with heap, event-loop and RSS watchdogs and
restarts with backoff. A change of the file or of a workload's module reloads only that
workload (the new one starts, traffic switches, the old drains); SIGHUP reloads too;
SIGTERM/SIGINT drain every workload in reverse dependency order and exit 0.

\`trellis host status\` prints each workload's state, restarts and figures from the admin
listener (default 127.0.0.1:9902).

options:
  -c, --config FILE     the host file (required)
  --admin HOST:PORT     admin listener address (default from the file, else 127.0.0.1:9902)
  --no-admin            no admin listener
  --log-level LEVEL     trace, debug, info, warn, error (default info, or $TRELLIS_LOG_LEVEL)
  --no-watch            do not watch the file and modules (SIGHUP still reloads)
  --json                (status) print the raw JSON`;

const options = {
  config: { type: 'string', short: 'c' },
  admin: { type: 'string' },
  'no-admin': { type: 'boolean' },
  'log-level': { type: 'string' },
  'no-watch': { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

function fmt(n: number | undefined, unit = ''): string {
  return n === undefined ? '-' : `${Math.round(n * 100) / 100}${unit}`;
}

/** One line per workload, for people. */
export function formatStatus(workloads: Record<string, WorkloadStatus>): string {
  const rows = [
    [
      'WORKLOAD',
      'KIND',
      'STATE',
      'RESTARTS',
      'HANDLED',
      'ERRORS',
      'CPU',
      'ELU',
      'DELAY',
      'HEAP',
      'QUEUE',
      'LAST EXIT',
    ],
  ];
  for (const [name, s] of Object.entries(workloads)) {
    rows.push([
      name,
      `${s.kind}${s.isolation === 'process' ? '/process' : ''}`,
      s.leading === undefined ? s.state : `${s.state} (${s.leading ? 'leading' : 'standby'})`,
      String(s.restarts),
      String(s.handled),
      String(s.errors),
      fmt(s.cpuSeconds, 's'),
      fmt(s.eventLoopUtilization),
      fmt(s.eventLoopDelayMs, 'ms'),
      s.heapBytes === undefined ? '-' : `${Math.round(s.heapBytes / 1048576)}MB`,
      s.queueDepth === undefined ? '-' : String(s.queueDepth),
      s.lastExit ? `${s.lastExit.reason} (${s.lastExit.message})` : '-',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

async function status(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, options, false);
  const at = values.admin ? parseHostPort(values.admin) : { host: '127.0.0.1', port: 9902 };
  let body: { workloads: Record<string, WorkloadStatus> };
  try {
    const res = await fetch(`http://${at.host}:${at.port}/admin/services`, {
      signal: AbortSignal.timeout(5000),
    });
    body = (await res.json()) as typeof body;
  } catch (err) {
    process.stderr.write(
      `trellis host status: no host admin listener at ${at.host}:${at.port} (${(err as Error).message}): start one with trellis host -c FILE, or pass --admin host:port\n`,
    );
    return 1;
  }
  process.stdout.write(
    values.json ? `${JSON.stringify(body.workloads, null, 2)}\n` : `${formatStatus(body.workloads)}\n`,
  );
  return Object.values(body.workloads).every((s) => s.state === 'ready') ? 0 : 2;
}

async function run(argv: string[]): Promise<number> {
  if (argv[0] === 'status') return status(argv.slice(1));
  const { values } = parseCommandArgs(argv, options, false);
  if (!values.config) throw usageError('name the host file with -c FILE');
  const logger = createLogger({
    name: 'host',
    ...(values['log-level'] ? { level: values['log-level'] } : {}),
  });
  const host = await startHost({
    file: values.config,
    logger,
    watch: !values['no-watch'],
    ...(values['no-admin']
      ? { admin: false as const }
      : values.admin
        ? { admin: parseHostPort(values.admin) }
        : {}),
  });
  const onHup = () => void host.reload();
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    drainOnSignals([host], {
      logger,
      drainMs: host.drainTimeout,
      exit: (code) => {
        process.exitCode = code;
        logger.flush?.();
        resolve();
      },
    });
  });
  process.off('SIGHUP', onHup);
  return Number(process.exitCode ?? 0);
}

export const hostCommand: Command = {
  name: 'host',
  summary: 'run many workloads (http, consumers, schedules, task pools) consolidated in one process',
  usage,
  run,
};
