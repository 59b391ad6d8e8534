/**
 * `npm run bench -- stores [kv|lease|events|queue]`: every building block's benchmark, each in
 * bench/stores/<block>.ts exporting `run()`, which prints its own table with ratios.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'stores');
const only = process.argv[2];
const blocks = readdirSync(dir)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .filter((b) => !only || b === only);
for (const block of blocks) {
  console.log(`\n### ${block}\n`);
  const mod = (await import(pathToFileURL(join(dir, `${block}.ts`)).href)) as { run: () => Promise<void> };
  await mod.run();
}
