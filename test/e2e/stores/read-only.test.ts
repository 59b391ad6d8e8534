import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../support/index.js';

/**
 * Read-only commands on an SQLite path (`leader status`, `config list`, `projections status`)
 * open the file read-only: a mistyped path is refused with TRELLIS_E_STORE_NOT_FOUND and nothing
 * is created; an existing file is read without being written.
 */
const dir = tempDir('trellis-read-only-');
afterAll(() => dir.cleanup());

const projections = dir.write(
  'projections.mjs',
  `export const projections = [{
  name: 'counts',
  tables: ['stream_counts'],
  async setup(tx, t) { await tx.sql(\`CREATE TABLE \${t('stream_counts')} (id TEXT PRIMARY KEY)\`); },
  async apply() {},
}];
`,
);

const commands: Record<string, (url: string) => string[]> = {
  'leader status': (url) => ['leader', 'status', '--group', 'g', '--store', url],
  'config list': (url) => ['config', 'list', '--store', url],
  'projections status': (url) => ['projections', 'status', '--module', projections, '--store', url],
};

describe('read-only commands on a missing SQLite file', () => {
  for (const [name, args] of Object.entries(commands)) {
    it(`${name}: says the file does not exist, creates no folder and no database`, async () => {
      const folder = join(dir.path, `typo-${name.replace(' ', '-')}`);
      const file = join(folder, 'trellis.db');
      const r = await runCli(args(`sqlite:${file}`));
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`TRELLIS_E_STORE_NOT_FOUND: ${file} does not exist`);
      expect(r.stderr).toContain('read-only commands never create a database');
      expect(existsSync(folder)).toBe(false);
    });
  }

  it('they read an existing file without writing to it (no tables of theirs created)', async () => {
    // A file another building block wrote: it has none of these commands' tables.
    const file = join(dir.path, 'other.db');
    const set = await runCli(
      ['config', 'set', 'app/flags', '--store', `sqlite:${file}`, dir.write('v.json', '{"a":1}')],
      {
        env: { TRELLIS_AUTHOR: 'e2e' },
      },
    );
    expect(set.code, set.stderr).toBe(0);
    const leader = await runCli(commands['leader status']!(`sqlite:${file}`));
    expect(leader.code, leader.stderr).toBe(3);
    expect(leader.stdout).toContain('no leader');
    const status = await runCli([...commands['projections status']!(`sqlite:${file}`), '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toEqual([{ name: 'counts', generation: 0, position: 0, lag: 0 }]);
    const list = await runCli(commands['config list']!(`sqlite:${file}`));
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain('app/flags');
    // And nothing was created inside it: the tables are still only the configuration store's.
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(file, { readonly: true });
    const tables = (
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
    ).map((t) => t.name);
    db.close();
    expect(tables.some((t) => t.includes('lease') || t.includes('events') || t.includes('projections'))).toBe(
      false,
    );
  });
});
