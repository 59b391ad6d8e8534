/**
 * CPU time a process has used, from /proc. On a shared machine req/s swings with whatever else
 * runs, but the CPU a target spends per request barely does: it is the steadier figure to
 * compare, and 1 / (CPU per request) estimates what the target would do with a core to itself.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** The fields of /proc/PID/stat after the command name (field 3 onwards), or undefined. */
function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields after its closing ")" are fixed.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * User + system CPU seconds used so far by process `pid` (all its threads) and by its live
 * descendants (a gateway's workers, nginx's worker processes), or NaN off Linux.
 */
export function cpuSeconds(pid: number): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const own = statFields(pid);
  if (own === undefined) return Number.NaN;
  const parentOf = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(entry);
    if (f === undefined) continue;
    parentOf.set(Number(entry), Number(f[1]));
    ticks.set(Number(entry), Number(f[11]) + Number(f[12]));
  }
  const inTree = (p: number): boolean => {
    for (let q: number | undefined = p, depth = 0; q !== undefined && q > 1 && depth < 16; depth++) {
      if (q === pid) return true;
      q = parentOf.get(q);
    }
    return false;
  };
  let total = 0;
  for (const [p, t] of ticks) if (inTree(p)) total += t;
  return total / ticksPerSecond;
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
