/**
 * The load part of a wrk benchmark: a warm-up run of every target, then interleaved measured
 * rounds (wrk + the target's CPU per request), the medians per target, and the usual table.
 */
import { type MeasuredRun, measureRun, type RunSummary, summarize } from './measure.js';
import { interleave } from './rounds.js';
import { table } from './table.js';
import type { Target } from './targets.js';
import { runWrk } from './wrk.js';

export interface LoadOptions {
  /** The CPU wrk is pinned to. */
  cpu: number;
  connections: number;
  durationS: number;
}

/** One unmeasured wrk run of every target (JIT, connection pools, caches warm); none for 0 s. */
export async function warmUp(targets: readonly Target[], options: LoadOptions): Promise<void> {
  // wrk refuses `-d 0`: `--warmup 0` means no warm-up.
  if (options.durationS <= 0) return;
  for (const t of targets) await runWrk({ url: t.url, headers: t.headers, ...options });
}

export interface RoundsLoadOptions extends LoadOptions {
  rounds: number;
  /** The progress line before each run; default `round N: NAME`. */
  label?: (t: Target, round: number) => string;
}

/** Interleaved rounds of measured wrk runs; the runs of each target in round order. */
export function measureRounds<T extends Target>(
  targets: readonly T[],
  options: RoundsLoadOptions,
): Promise<Map<T, MeasuredRun[]>> {
  const { rounds, label = (t, r) => `round ${r}: ${t.name}`, ...load } = options;
  return interleave({ targets, rounds, onRun: (t, r) => console.log(label(t, r)) }, (t) =>
    measureRun(t.proc?.pid, { url: t.url, headers: t.headers, ...load }),
  );
}

/** The median summary of each target, by name, in the targets' order. */
export function summarizeByName<T extends Target>(
  targets: readonly T[],
  results: Map<T, MeasuredRun[]>,
): Map<string, RunSummary> {
  return new Map(targets.map((t) => [t.name, summarize(results.get(t)!)]));
}

export interface MeasureTargetsOptions extends RoundsLoadOptions {
  /** Seconds of unmeasured wrk per target first; undefined: no warm-up. */
  warmupS?: number;
}

/** Warm-up (when asked), interleaved measured rounds, and the median summary of each target. */
export async function measureTargets<T extends Target>(
  targets: readonly T[],
  options: MeasureTargetsOptions,
) {
  // Picked by name, so `{ ...runArgs(DEFAULTS), cpu }` can be passed as it is.
  const { warmupS, rounds, cpu, connections, durationS, label } = options;
  if (warmupS !== undefined) await warmUp(targets, { cpu, connections, durationS: warmupS });
  const results = await measureRounds(targets, { rounds, cpu, connections, durationS, label });
  return { results, summary: summarizeByName(targets, results) };
}

export interface SummaryColumns {
  /** Add `req per CPU-second` (1e6 / CPU µs per request). */
  perCpuSecond?: boolean;
  /** Add `req/s per round`. */
  perRound?: boolean;
}

/** target | req/s | p50 ms | p99 ms | errors | CPU µs/req [| req per CPU-second] [| req/s per round]. */
export function summaryTable(summary: Map<string, RunSummary>, columns: SummaryColumns = {}): string {
  const cpu = (s: RunSummary, v: number) => (Number.isNaN(s.cpuUs) ? '-' : v);
  return table(
    [
      'target',
      'req/s',
      'p50 ms',
      'p99 ms',
      'errors',
      'CPU µs/req',
      ...(columns.perCpuSecond ? ['req per CPU-second'] : []),
      ...(columns.perRound ? ['req/s per round'] : []),
    ],
    [...summary].map(([name, s]) => [
      name,
      s.rps,
      s.p50,
      s.p99,
      s.errors,
      cpu(s, s.cpuUs),
      ...(columns.perCpuSecond ? [cpu(s, 1e6 / s.cpuUs)] : []),
      ...(columns.perRound ? [s.perRound] : []),
    ]),
  );
}

/**
 * The same interleaved rounds at one connection, half as long (at least 2 s): the latency one
 * caller waits, where a run at many connections measures queueing on the pinned core.
 */
export function measureAtOneConnection<T extends Target>(
  targets: readonly T[],
  options: { rounds: number; cpu: number; durationS: number },
) {
  return measureTargets(targets, {
    rounds: options.rounds,
    cpu: options.cpu,
    connections: 1,
    durationS: Math.max(2, options.durationS / 2),
    label: (t, r) => `round ${r} (1 connection): ${t.name}`,
  });
}
