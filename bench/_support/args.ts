/**
 * The command-line flags every wrk benchmark takes: `--rounds`, `--duration` (seconds per run),
 * `--connections` and `--warmup` (seconds per target), each with the benchmark's own default,
 * plus string flags of its own a benchmark adds.
 */
import { parseArgs } from 'node:util';

export interface RunDefaults {
  rounds: number;
  duration: number;
  connections: number;
  warmup: number;
}

/**
 * The common flags as numbers, and `values` holding every flag as given (the extra ones too).
 * `extra` names a benchmark's own string flags with their defaults (undefined: no default).
 */
export function runArgs(defaults: RunDefaults, extra: Record<string, string | undefined> = {}) {
  const options: Record<string, { type: 'string'; default?: string }> = {};
  for (const [name, value] of Object.entries({ ...defaults, ...extra }))
    options[name] = value === undefined ? { type: 'string' } : { type: 'string', default: String(value) };
  const { values } = parseArgs({ options });
  const flags = values as Record<string, string | undefined>;
  return {
    rounds: Number(flags.rounds),
    durationS: Number(flags.duration),
    connections: Number(flags.connections),
    warmupS: Number(flags.warmup),
    values: flags,
  };
}
