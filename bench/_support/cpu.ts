/**
 * CPU time a process has used, from /proc. On a shared machine req/s swings with whatever else
 * runs, but the CPU a target spends per request barely does: it is the steadier figure to
 * compare, and 1 / (CPU per request) estimates what the target would do with a core to itself.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** User + system CPU seconds used so far by process `pid` (all its threads), or NaN off Linux. */
export function cpuSeconds(pid: number): number {
  try {
    ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields after its closing ")" are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return Number.NaN;
  }
}

/** Runs `work` and returns its result with the CPU seconds `pid` spent meanwhile. */
export async function withCpu<T>(
  pid: number | undefined,
  work: () => Promise<T>,
): Promise<{ result: T; cpuS: number }> {
  const before = pid === undefined ? Number.NaN : cpuSeconds(pid);
  const result = await work();
  const after = pid === undefined ? Number.NaN : cpuSeconds(pid);
  return { result, cpuS: after - before };
}
