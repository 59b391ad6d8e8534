import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Logger } from 'pino';
import { TrellisError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { LeaderElector, type LeaderElectorOptions, type LeadershipContext } from './elector.js';
import { sleep } from './timers.js';
import { CANNOT_EXECUTE, NOT_FOUND, WATCHDOG_SOURCE } from './watchdog.js';

/** Environment variables the supervised command receives. */
export const FENCING_TOKEN_ENV = 'TRELLIS_FENCING_TOKEN';
export const LEADER_GROUP_ENV = 'TRELLIS_LEADER_GROUP';
export const LEADER_IDENTITY_ENV = 'TRELLIS_LEADER_IDENTITY';

/**
 * What happens when the command exits by itself while this candidate leads (systemd's words):
 * `on-failure` restarts it after a failure and, after exit 0, keeps leading without rerunning it
 * until the term ends; `always` restarts it after any exit; `never` (`--once`) runs it once per
 * term: exit 0 keeps the term idle, a failure releases the lease and ends the supervisor.
 */
export type RestartPolicy = 'on-failure' | 'always' | 'never';

/** `trellis leader run` exit codes besides 0 (stopped by a signal) and the command's own status. */
export const EXIT_CRASH_LOOP = 4;

export interface SuperviseOptions extends Omit<LeaderElectorOptions, 'onStartedLeading'> {
  /** The command and its arguments, run only while this candidate leads. */
  command: readonly string[];
  /** How long the command may take to exit after SIGTERM before it gets SIGKILL (default 5 s). */
  graceMs?: number;
  /** When to restart a command that exits by itself (default `on-failure`). */
  restart?: RestartPolicy;
  /** Delay before the first restart after a failure; doubles with each failure in a row (default 1 s). */
  backoffMs?: number;
  /** Longest restart delay (default 30 s). A run that lasted longer than this resets the backoff. */
  maxBackoffMs?: number;
  /** Failures in a row after which the supervisor gives up: a crash loop (default 5). */
  maxRestarts?: number;
  logger?: Logger;
}

/** A command run only while leading: `run()` resolves with the exit code `trellis leader run` uses. */
export interface SupervisedCommand {
  readonly elector: LeaderElector;
  /**
   * Campaigns and supervises until stopped (resolves 0), a crash loop (EXIT_CRASH_LOOP), a command
   * that cannot start (126/127) or, with restart `never`, a failed run (its status; 128+n for signal n).
   */
  run(signal?: AbortSignal): Promise<number>;
  /** Stops the command, releases the lease, stops campaigning. */
  stop(): Promise<void>;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** How long the command ran, in ms. */
  ranMs: number;
}

/** "exit 3", "killed by SIGKILL": how an exit reads in a log line. */
export function describeExit(exit: { code: number | null; signal: NodeJS.Signals | null }): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  return `exit ${exit.code}`;
}

/** A shell-style status for an exit: the code, or 128 + the signal's number. */
function statusOf(exit: { code: number | null; signal: NodeJS.Signals | null }): number {
  if (exit.signal) return 128 + (constants.signals[exit.signal] ?? 0);
  return exit.code ?? 1;
}

/**
 * Runs a command only while this candidate leads (`trellis leader run`). The command gets the
 * term's fencing token in TRELLIS_FENCING_TOKEN; the moment leadership is lost or in doubt it
 * gets SIGTERM, then SIGKILL after the grace period, and the candidate campaigns again. A command
 * that exits by itself is handled by the restart policy, with exponential backoff after failures
 * and a crash-loop limit; one that cannot start (not found, not executable) is reported and ends
 * the supervisor at once, since restarting it cannot help.
 */
export function superviseWhileLeading(options: SuperviseOptions): SupervisedCommand {
  const log = options.logger ?? silentLogger();
  const graceMs = options.graceMs ?? 5000;
  const policy = options.restart ?? 'on-failure';
  const backoffMs = options.backoffMs ?? 1000;
  const maxBackoffMs = Math.max(backoffMs, options.maxBackoffMs ?? 30_000);
  const maxRestarts = options.maxRestarts ?? 5;
  const [file, ...args] = options.command;
  if (!file) {
    throw new TrellisError('TRELLIS_E_LEADER_OPTIONS_INVALID', 'the command to supervise is empty');
  }
  if (!['on-failure', 'always', 'never'].includes(policy)) {
    throw new TrellisError(
      'TRELLIS_E_LEADER_OPTIONS_INVALID',
      `restart policy "${policy}" is not one of on-failure, always, never`,
    );
  }
  let outcome = 0;
  // Failures in a row, across terms too: a command that crashes at once must not loop forever
  // just because each crash also gave the term away.
  let failures = 0;
  // Each run gets a term of its own (a fresh fencing token): a restart gives the term up and the
  // command starts again in the next one, not before this moment, on whichever candidate wins
  // it (another candidate takes over at once; this one waits out its backoff first).
  let nextStartAt = 0;
  let elector: LeaderElector;

  const restartInNewTerm = (delayMs: number) => {
    nextStartAt = performance.now() + delayMs;
    elector.resign();
  };

  const finish = (code: number) => {
    outcome = code;
    void elector.stop();
  };

  const runOnce = async (ctx: LeadershipContext): Promise<Exit> => {
    // Through the watchdog (see watchdog.ts), in its own process group, so SIGTERM/SIGKILL
    // reach everything the command started (sh -c …), and the command cannot outlive us.
    const started = performance.now();
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
      // The watchdog itself (node) could not start: as good as a command not found.
      child.once('error', () => resolve({ code: NOT_FOUND, signal: null }));
    });
    clearTimeout(killTimer);
    ctx.signal.removeEventListener('abort', onAbort);
    return { ...result, ranMs: performance.now() - started };
  };

  const onStartedLeading = async (ctx: LeadershipContext) => {
    const wait = nextStartAt - performance.now();
    if (wait > 0) {
      log.info({ token: ctx.token, delayMs: Math.round(wait) }, 'leading: waiting out the restart backoff');
      await sleep(wait, ctx.signal);
    }
    if (ctx.signal.aborted) return;
    const exit = await runOnce(ctx);
    const fields = {
      exitCode: exit.code,
      signal: exit.signal,
      token: ctx.token,
      ranMs: Math.round(exit.ranMs),
    };
    if (ctx.signal.aborted) {
      log.info(fields, `the command stopped (${describeExit(exit)})`);
      return;
    }
    if (exit.code === NOT_FOUND || exit.code === CANNOT_EXECUTE) {
      log.error(
        { ...fields, command: file },
        `cannot start the command "${file}": ${exit.code === NOT_FOUND ? 'not found' : 'not executable'} (${describeExit(exit)}); restarting cannot help: releasing the lease and exiting ${exit.code}`,
      );
      finish(exit.code);
      return;
    }
    if (exit.code === 0) {
      failures = 0;
      if (policy === 'always') {
        log.info(
          fields,
          `the command completed (exit 0); restart always: running it again in ${backoffMs}ms, in a new term`,
        );
        restartInNewTerm(backoffMs);
        return;
      }
      log.info(
        fields,
        'the command completed (exit 0): keeping the term without rerunning it until the term ends',
      );
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      return;
    }
    if (policy === 'never') {
      log.error(
        fields,
        `the command failed (${describeExit(exit)}); restart never: releasing the lease and exiting`,
      );
      finish(statusOf(exit));
      return;
    }
    // A run that stayed up longer than the longest delay was healthy: start counting afresh.
    if (exit.ranMs >= maxBackoffMs) failures = 0;
    failures += 1;
    if (failures > maxRestarts) {
      log.error(
        fields,
        `crash loop: the command failed ${failures} times in a row (last: ${describeExit(exit)}); releasing the lease and exiting ${EXIT_CRASH_LOOP}`,
      );
      finish(EXIT_CRASH_LOOP);
      return;
    }
    const delay = Math.min(maxBackoffMs, backoffMs * 2 ** (failures - 1));
    log.warn(
      { ...fields, failures, delayMs: delay },
      `the command failed (${describeExit(exit)}); restarting in ${delay}ms in a new term (failure ${failures} of at most ${maxRestarts} in a row)`,
    );
    restartInNewTerm(delay);
  };
  elector = new LeaderElector({ ...options, logger: log, onStartedLeading });
  return {
    elector,
    async run(signal) {
      await elector.run(signal);
      return outcome;
    },
    stop: () => elector.stop(),
  };
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
}
