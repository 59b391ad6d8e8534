/**
 * One benchmark at a time on this machine. Two benchmarks that pin their targets to the same
 * CPU ruin each other's figures without either noticing, and several people share the machine,
 * so every benchmark that uses this harness waits for the one already running. The lock is a
 * file holding the owner's pid; a lock whose owner is gone is taken over.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOCK = join(tmpdir(), 'trellis-bench.lock');
/** Waiting longer than this means something is stuck: run anyway, and say so. */
const MAX_WAIT_MS = 20 * 60_000;
let held = false;

/** Blocks until this process holds the machine-wide benchmark lock (idempotent). */
export function holdBenchLock(): void {
  if (held) return;
  const deadline = Date.now() + MAX_WAIT_MS;
  let told = false;
  for (;;) {
    try {
      const fd = openSync(LOCK, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      held = true;
      process.on('exit', releaseBenchLock);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = lockOwner();
    if (owner === undefined || !alive(owner)) {
      removeLock();
      continue;
    }
    if (Date.now() > deadline) {
      console.error(
        `bench: pid ${owner} has held ${LOCK} for 20 min; running anyway (figures may be skewed)`,
      );
      return;
    }
    if (!told) {
      console.error(
        `bench: waiting for another benchmark (pid ${owner}) to finish, so the two do not skew each other…`,
      );
      told = true;
    }
    // A synchronous wait: benchmarks call this before anything else runs.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
  }
}

/** Lets the next benchmark run. Called on exit; harmless when not held. */
export function releaseBenchLock(): void {
  if (!held) return;
  held = false;
  if (lockOwner() === process.pid) removeLock();
}

function lockOwner(): number | undefined {
  try {
    const pid = Number(readFileSync(LOCK, 'utf8'));
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function removeLock(): void {
  try {
    unlinkSync(LOCK);
  } catch {
    // Someone else removed it first: fine.
  }
}
