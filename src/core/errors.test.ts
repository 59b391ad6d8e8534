import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const CODE_RE = /TRELLIS_E_[A-Z0-9_]+/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') ? [path] : [];
  });
}

describe('error codes', () => {
  const used = new Set(sourceFiles('src').flatMap((f) => readFileSync(f, 'utf8').match(CODE_RE) ?? []));
  // Documented codes are the first cell of a table row: | `TRELLIS_E_X` | ...
  const docs = readFileSync('docs/errors.md', 'utf8');
  const documented = new Set([...docs.matchAll(/^\|\s*`(TRELLIS_E_[A-Z0-9_]+)`/gm)].map((m) => m[1]!));

  it('every code thrown in src/ is documented in docs/errors.md', () => {
    expect([...used].filter((c) => !documented.has(c)).sort()).toEqual([]);
  });

  it('docs/errors.md lists no code that nothing throws', () => {
    expect([...documented].filter((c) => !used.has(c)).sort()).toEqual([]);
  });
});
