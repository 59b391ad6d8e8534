/**
 * One measured wrk run of a target plus the CPU the target spent on it, and the median summary
 * of several such runs: the pieces every wrk-based benchmark here repeats.
 */
import { withCpu } from './cpu.js';
import { median } from './rounds.js';
import { runWrk, type WrkOptions, type WrkResult } from './wrk.js';

/** A wrk run and the target's CPU per request meanwhile (NaN when its pid is unknown). */
export type MeasuredRun = WrkResult & { cpuUsPerRequest: number };

/** Runs wrk against a target and reads the CPU process `pid` spent serving it. */
export async function measureRun(pid: number | undefined, options: WrkOptions): Promise<MeasuredRun> {
  const { result, cpuS } = await withCpu(pid, () => runWrk(options));
  return { ...result, cpuUsPerRequest: (cpuS * 1e6) / result.requests };
}

/** The median of several runs of one target. */
export interface RunSummary {
  rps: number;
  p50: number;
  p99: number;
  /** Errors of every kind, summed over the runs. */
  errors: number;
  cpuUs: number;
  /** req/s of each run, in order: `1461 / 2812 / 2553`. */
  perRound: string;
}

export function summarize(runs: readonly MeasuredRun[]): RunSummary {
  return {
    rps: median(runs.map((r) => r.requestsPerSec)),
    p50: median(runs.map((r) => r.latencyMs.p50)),
    p99: median(runs.map((r) => r.latencyMs.p99)),
    errors: runs.reduce((sum, r) => sum + r.errorCount, 0),
    cpuUs: median(runs.map((r) => r.cpuUsPerRequest)),
    perRound: runs.map((r) => Math.round(r.requestsPerSec)).join(' / '),
  };
}
