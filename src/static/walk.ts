import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Every regular file under `dir` as relative `/`-separated paths, sorted. Dot files and folders
 * (`.trellis`, `.git`) are left out: they are not part of a site.
 */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (rel: string): Promise<void> => {
    const entries = await readdir(join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const child = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await visit(child);
      else if (e.isFile()) out.push(child);
    }
  };
  await visit('');
  return out.sort();
}

/** Whether a Content-Type is worth compressing (text, JSON, JavaScript, XML, SVG, WebAssembly, fonts without their own compression). */
export function isCompressible(contentType: string): boolean {
  return /^text\/|json|javascript|xml|svg|wasm|font\/(ttf|otf)|x-font-(ttf|otf)|manifest/i.test(contentType);
}

/** Runs `work` over `items`, at most `limit` at a time; the first failure stops new work and rejects. */
export async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: unknown;
  const lane = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failed !== undefined) throw failed;
}
