/**
 * The outer shell of a benchmark script: stop every started process on Ctrl-C, and after the
 * run whether it ended or threw, so no pinned server outlives it to skew the next benchmark.
 */
import { stopAll, stopAllOnExit } from './process.js';

/** Runs `main` with every process it starts stopped afterwards (and on SIGINT/SIGTERM). */
export async function runBench(main: () => Promise<void>): Promise<void> {
  stopAllOnExit();
  try {
    await main();
  } finally {
    await stopAll();
  }
}
