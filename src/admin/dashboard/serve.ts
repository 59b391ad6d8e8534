import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';

// The page's files sit beside this module (`npm run build` copies public/ into dist/), so the
// dashboard works offline: no CDN, no build step, no framework.
const PUBLIC = join(import.meta.dirname, 'public');

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/metrics.js': { file: 'metrics.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/dashboard/dom.js': { file: 'dom.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/panels.js': { file: 'panels.js', type: 'text/javascript; charset=utf-8' },
  // Each part's panel renderer, public/panels/<kind>.js: listed once from the folder, so a new
  // renderer needs no registration and no request path ever reaches the file system.
  ...Object.fromEntries(
    renderers()
      .filter((f) => /^[a-z][a-z0-9-]*\.js$/.test(f))
      .map((f) => [
        `/dashboard/panels/${f}`,
        { file: `panels/${f}`, type: 'text/javascript; charset=utf-8' },
      ]),
  ),
};

function renderers(): string[] {
  try {
    return readdirSync(join(PUBLIC, 'panels'));
  } catch {
    return []; // no part has a renderer of its own yet: every panel is drawn by the generic one
  }
}

/** Content-Security-Policy of every dashboard file: only this origin's scripts, styles and fetches. */
export const DASHBOARD_CSP =
  "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const cache = new Map<string, Buffer>();

/** True when `path` is one of the dashboard's files (then `serveDashboard` answers it). */
export function isDashboardPath(path: string | undefined): boolean {
  return path !== undefined && Object.hasOwn(FILES, path);
}

/** Answers a dashboard file; read once from disk, then from memory. */
export async function serveDashboard(path: string | undefined, res: ServerResponse): Promise<void> {
  const entry = FILES[path ?? '']!;
  let body = cache.get(entry.file);
  if (body === undefined) {
    body = await readFile(join(PUBLIC, entry.file));
    cache.set(entry.file, body);
  }
  res.writeHead(200, {
    'content-type': entry.type,
    'content-length': body.length,
    'content-security-policy': DASHBOARD_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-cache',
  });
  res.end(body);
}
