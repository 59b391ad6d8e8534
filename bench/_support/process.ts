/**
 * Starting the processes a benchmark measures: pinned to a CPU with `taskset` (so the target and
 * the load generator do not fight over a core), output kept in a log file for when one fails,
 * and stopped by the exact pid that was started.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { holdBenchLock } from './lock.js';

/** A process started for a benchmark. */
export interface BenchProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code when the process ends by itself or by stop(). */
  readonly exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines of its output, for error messages. */
  tail(lines?: number): string;
}

export interface StartOptions {
  /** Pin to this CPU or CPU list (`taskset -c 0` / `0,1`); ignored on a one-CPU machine. */
  cpu?: number | string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

const started = new Set<BenchProcess>();
/** The children still running, for the last-resort kill when the run dies. */
const children = new Set<ChildProcess>();
let workDir: string | undefined;

// A benchmark that throws must not leave pinned servers behind to skew the next one's figures:
// on any exit, however abrupt, every child still running gets SIGTERM (synchronously).
process.on('exit', () => {
  for (const child of children) child.kill('SIGTERM');
});

/**
 * A temporary folder for this benchmark run's configs and logs (created once per run). The first
 * call also waits for the machine-wide benchmark lock, so every benchmark that starts processes
 * through this harness runs alone.
 */
export function benchDir(): string {
  if (workDir === undefined) {
    holdBenchLock();
    workDir = mkdtempSync(join(tmpdir(), 'trellis-bench-'));
  }
  return workDir;
}

/** Whether pinning is possible: taskset needs two CPUs to keep target and load apart. */
export const canPin = availableParallelism() >= 2;

/** Starts `command args…`, pinned to `options.cpu` when given. */
export function startProcess(
  name: string,
  command: string,
  args: string[],
  options: StartOptions = {},
): BenchProcess {
  const pinned = options.cpu !== undefined && canPin;
  const [cmd, argv] = pinned ? ['taskset', ['-c', String(options.cpu), command, ...args]] : [command, args];
  const logFile = join(benchDir(), `${name.replace(/[^a-z0-9-]+/gi, '_')}.log`);
  const log = createWriteStream(logFile);
  const child: ChildProcess = spawn(cmd, argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      children.delete(child);
      log.end();
      resolve(code);
    });
    child.once('error', (err) => {
      log.end(`spawn failed: ${err.message}\n`);
      resolve(-1);
    });
  });
  const proc: BenchProcess = {
    name,
    pid: child.pid ?? -1,
    logFile,
    exited,
    async stop(graceMs = 3000) {
      started.delete(proc);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    tail(lines = 20) {
      try {
        return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
  };
  started.add(proc);
  return proc;
}

/** Stops every process this run started that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((p) => p.stop()));
}

/** Stops everything on Ctrl-C or an uncaught error, so no pinned server outlives the run. */
export function stopAllOnExit(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void stopAll().finally(() => process.exit(130));
    });
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once `port` accepts a TCP connection; rejects after `timeoutMs` or when `proc` exits. */
export async function waitForPort(port: number, timeoutMs = 10_000, proc?: BenchProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void proc?.exited.then(() => {
    exited = true;
  });
  while (!(await canConnect(port))) {
    if (exited) throw new Error(`${proc!.name} exited before listening on ${port}:\n${proc!.tail()}`);
    if (Date.now() > deadline) {
      throw new Error(
        `nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms${proc ? `:\n${proc.tail()}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves once GET `url` answers `status` (default 200); rejects after `timeoutMs`. */
export async function waitForHttp(url: string, timeoutMs = 10_000, status = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === status) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline)
      throw new Error(`${url} did not answer ${status} within ${timeoutMs} ms (${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
