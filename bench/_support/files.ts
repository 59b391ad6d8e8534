/** Config files a benchmark writes for its targets, each in its own folder of the run's temp dir. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchDir } from './process.js';

/** Writes `text` to `<benchDir>/<folder>/<file>` (the folder created) and returns the path. */
export function writeBenchFile(folder: string, file: string, text: string): string {
  const dir = join(benchDir(), folder);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, file);
  writeFileSync(path, text);
  return path;
}
