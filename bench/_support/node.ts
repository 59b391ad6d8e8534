/**
 * Starting Node scripts as benchmark targets: this Node binary, pinned like any other process,
 * with `NODE_ENV=production` (as a user runs a server); `startTrellis` runs the built CLI
 * (`dist/cli/main.js`, so `npm run build` first).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchProcess, type StartOptions, startProcess } from './process.js';

/** The repository's root folder. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../..');
/** The `bench/` folder (its package.json holds the benchmark peers). */
export const benchFolder = join(repoRoot, 'bench');
/** The path of a helper script in `bench/_support`, e.g. `supportScript('node-forwarder.mjs')`. */
export function supportScript(file: string): string {
  return join(benchFolder, '_support', file);
}
/** The built Trellis CLI. */
export const trellisCli = join(repoRoot, 'dist/cli/main.js');

/** `node ARGS…` (a script and its arguments), `options.env` added to this process's env. */
export function startNode(name: string, args: readonly string[], options: StartOptions = {}): BenchProcess {
  return startProcess(name, process.execPath, [...args], {
    ...options,
    env: { ...process.env, NODE_ENV: 'production', ...options.env },
  });
}

export interface TrellisOptions extends StartOptions {
  /** Node flags before the CLI, e.g. `--cpu-prof`. */
  nodeArgs?: readonly string[];
  /** Another build's CLI, to compare before and after a change. */
  cli?: string;
}

/** `node dist/cli/main.js ARGS…`, e.g. `['gateway', '-c', file, '--no-watch']`. */
export function startTrellis(
  name: string,
  args: readonly string[],
  options: TrellisOptions = {},
): BenchProcess {
  const { nodeArgs = [], cli = trellisCli, ...rest } = options;
  return startNode(name, [...nodeArgs, cli, ...args], rest);
}
