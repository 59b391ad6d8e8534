/**
 * Interleaved repeats: round 1 runs every target once, then round 2, and so on, so a burst of
 * noise from the shared machine hits all targets alike instead of the one that ran at that time.
 */

export interface RoundsOptions<T> {
  targets: readonly T[];
  rounds: number;
  /** Called before each run, e.g. to print progress. */
  onRun?: (target: T, round: number) => void;
}

/** Runs `measure` for every target in every round, interleaved; results per target in round order. */
export async function interleave<T, R>(
  options: RoundsOptions<T>,
  measure: (target: T, round: number) => Promise<R>,
) {
  const results = new Map<T, R[]>(options.targets.map((t) => [t, []]));
  for (let round = 1; round <= options.rounds; round++) {
    for (const target of options.targets) {
      options.onRun?.(target, round);
      results.get(target)!.push(await measure(target, round));
    }
  }
  return results;
}

/** The median of some numbers (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
