import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../support/index.js';

/** `trellis projections --module FILE.ts` without a TypeScript loader says how to load it. */
const dir = tempDir('trellis-projections-module-');
afterAll(() => dir.cleanup());

describe('trellis projections --module', () => {
  it('names the fix for a .ts module node cannot load by itself', async () => {
    const file = dir.write('orders-model.ts', 'export const projections: unknown[] = [];\n');
    const r = await runCli(
      ['projections', 'status', '--module', file, '--store', `sqlite:${join(dir.path, 'e.db')}`],
      {
        env: { NODE_OPTIONS: '' },
      },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('TRELLIS_E_PROJECTION_MODULE');
    expect(r.stderr).toContain("NODE_OPTIONS='--import tsx'");
  });
});
