import { type ChildProcess, spawn } from 'node:child_process';
import type { Logger } from 'pino';
import { silentLogger } from '../core/logger.js';
import { LeaderElector, type LeaderElectorOptions, type LeadershipContext } from './elector.js';
import { WATCHDOG_SOURCE } from './watchdog.js';

/** Environment variables the supervised command receives. */
export const FENCING_TOKEN_ENV = 'TRELLIS_FENCING_TOKEN';
export const LEADER_GROUP_ENV = 'TRELLIS_LEADER_GROUP';
export const LEADER_IDENTITY_ENV = 'TRELLIS_LEADER_IDENTITY';

export interface SuperviseOptions extends Omit<LeaderElectorOptions, 'onStartedLeading'> {
  /** The command and its arguments, run only while this candidate leads. */
  command: readonly string[];
  /** How long the command may take to exit after SIGTERM before it gets SIGKILL (default 5 s). */
  graceMs?: number;
  logger?: Logger;
}

/**
 * Runs a command only while this candidate leads (`trellis leader run`). The command gets the
 * term's fencing token in TRELLIS_FENCING_TOKEN; the moment leadership is lost or in doubt it
 * gets SIGTERM, then SIGKILL after the grace period, and the candidate campaigns again. A
 * command that exits by itself gives up the term so another candidate can start it.
 */
export function superviseWhileLeading(options: SuperviseOptions): LeaderElector {
  const log = options.logger ?? silentLogger();
  const graceMs = options.graceMs ?? 5000;
  const [file, ...args] = options.command;
  if (!file) throw new Error('superviseWhileLeading: command is empty');
  let elector: LeaderElector;
  const onStartedLeading = async (ctx: LeadershipContext) => {
    // Through the watchdog (see watchdog.ts), in its own process group, so SIGTERM/SIGKILL
    // reach everything the command started (sh -c …), and the command cannot outlive us.
    const child = spawn(
      process.execPath,
      ['-e', WATCHDOG_SOURCE, '--', String(graceMs), String(elector.timing.renewDeadline), file, ...args],
      {
        stdio: 'inherit',
        detached: true,
        env: {
          ...process.env,
          [FENCING_TOKEN_ENV]: String(ctx.token),
          [LEADER_GROUP_ENV]: ctx.group,
          [LEADER_IDENTITY_ENV]: ctx.identity,
        },
      },
    );
    log.info({ token: ctx.token, pid: child.pid, command: file }, 'leading: started the command');
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      log.info(
        { token: ctx.token, pid: child.pid, graceMs },
        'leadership ended: sending SIGTERM to the command',
      );
      signalGroup(child, 'SIGTERM');
      killTimer = setTimeout(() => {
        log.warn({ pid: child.pid }, 'the command outlived its grace period: SIGKILL');
        signalGroup(child, 'SIGKILL');
      }, graceMs);
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (err) => {
        log.error({ err: err.message, command: file }, 'could not start the command');
        resolve({ code: null, signal: null });
      });
    });
    clearTimeout(killTimer);
    ctx.signal.removeEventListener('abort', onAbort);
    if (!ctx.signal.aborted) {
      log.warn({ ...result, token: ctx.token }, 'the command exited while leading: giving up the term');
      elector.resign();
    } else {
      log.info({ ...result, token: ctx.token }, 'the command stopped');
    }
  };
  elector = new LeaderElector({ ...options, logger: log, onStartedLeading });
  return elector;
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
}
