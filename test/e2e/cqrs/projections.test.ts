/**
 * `trellis projections run|status|rebuild` as a user runs them: the built CLI in a child
 * process, a user's projection module, an SQLite event store shared between processes.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const cli = join(root, 'dist/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'trellis-e2e-cqrs-'));
const dbPath = join(dir, 'events.db');
const store = `sqlite:${dbPath}`;
const marker = join(dir, 'in-batch');
const moduleFile = join(dir, 'projections.mjs');
const children: ChildProcess[] = [];

// A user's module: a read model that counts events per stream. `apply` is slow on purpose and
// leaves a marker while a batch is open, so the test can kill the process mid-batch.
writeFileSync(
  moduleFile,
  `import { writeFileSync, rmSync } from 'node:fs';
export const projections = [{
  name: 'counts',
  tables: ['stream_counts'],
  batchSize: 200,
  async setup(tx, t) {
    await tx.sql(\`CREATE TABLE \${t('stream_counts')} (stream_id TEXT PRIMARY KEY, events INTEGER NOT NULL)\`);
  },
  async apply(events, tx, t) {
    writeFileSync(${JSON.stringify(marker)}, 'open');
    for (const e of events) {
      await tx.sql(\`INSERT INTO \${t('stream_counts')} (stream_id, events) VALUES (?, 1)
        ON CONFLICT (stream_id) DO UPDATE SET events = events + 1\`, [e.streamId]);
      await new Promise((r) => setTimeout(r, 1));
    }
    rmSync(${JSON.stringify(marker)}, { force: true });
  },
}];
`,
);

function trellis(...args: string[]) {
  return spawnSync(
    process.execPath,
    [cli, 'projections', ...args, '--module', moduleFile, '--store', store],
    {
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
}

function startRunner(): ChildProcess {
  const child = spawn(
    process.execPath,
    [cli, 'projections', 'run', '--module', moduleFile, '--store', store],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  return child;
}

async function until(check: () => boolean, what: string, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const readDb = () => new Database(dbPath, { readonly: true, fileMustExist: true });
function checkpoint(): number {
  const db = readDb();
  try {
    const row = db.prepare("SELECT position FROM trellis_projections WHERE name = 'counts'").get() as
      | { position: number }
      | undefined;
    return row?.position ?? 0;
  } catch {
    return 0;
  } finally {
    db.close();
  }
}
function counts(): Record<string, number> {
  const db = readDb();
  try {
    const rows = db.prepare('SELECT stream_id, events FROM stream_counts ORDER BY stream_id').all() as {
      stream_id: string;
      events: number;
    }[];
    return Object.fromEntries(rows.map((r) => [r.stream_id, r.events]));
  } finally {
    db.close();
  }
}

const TOTAL = 2000;
beforeAll(async () => {
  if (!existsSync(cli)) throw new Error('run `npm run build` before the e2e tier');
  const { openEventStore } = (await import(
    pathToFileURL(join(root, 'dist/stores/events/index.js')).href
  )) as {
    openEventStore: typeof import('../../../src/stores/events/index.js').openEventStore;
  };
  const events = await openEventStore(store);
  for (let i = 0; i < TOTAL / 10; i++) {
    await events.append(
      `s-${i % 7}`,
      Array.from({ length: 10 }, () => ({ type: 'Ticked', data: {} })),
    );
  }
  await events.close();
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('trellis projections', () => {
  it('a runner killed with SIGKILL mid-batch resumes without applying any event twice', async () => {
    const first = startRunner();
    // Kill it once a batch has committed and the next one is half applied.
    await until(() => checkpoint() > 0 && existsSync(marker), 'a batch in progress after a committed one');
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const at = checkpoint();
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThan(TOTAL);
    // What was committed matches the checkpoint exactly: the half batch left no trace.
    expect(Object.values(counts()).reduce((a, b) => a + b, 0)).toBe(at);

    const second = startRunner();
    await until(() => checkpoint() === TOTAL, 'the restarted runner to catch up');
    second.kill('SIGTERM');
    const code = await new Promise((r) => second.once('exit', (c) => r(c)));
    expect(code).toBe(0);
    const got = counts();
    const expected: Record<string, number> = {};
    for (let i = 0; i < TOTAL / 10; i++) expected[`s-${i % 7}`] = (expected[`s-${i % 7}`] ?? 0) + 10;
    expect(got).toEqual(expected);
  });

  it('status shows position and lag; rebuild shows progress and swaps in a fresh copy', async () => {
    const status = trellis('status', '--json');
    expect(status.status).toBe(0);
    expect(JSON.parse(status.stdout)).toEqual([{ name: 'counts', generation: 1, position: TOTAL, lag: 0 }]);
    const table = trellis('status');
    expect(table.stdout).toMatch(/^NAME\s+COPY\s+POSITION\s+LAG/);
    expect(table.stdout).toMatch(/counts\s+1\s+2000\s+0/);

    const before = counts();
    const rebuild = trellis('rebuild', 'counts');
    expect(rebuild.status).toBe(0);
    expect(rebuild.stderr).toMatch(/rebuild counts: 2,000\/2,000 events \(100%\), [\d,]+ events\/s/);
    expect(rebuild.stdout).toContain('rebuilt counts: copy 2, position 2000');
    expect(counts()).toEqual(before);
  });

  it('says what is wrong with bad arguments', () => {
    const unknown = trellis('rebuild', 'nope');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('TRELLIS_E_PROJECTION_UNKNOWN');
    expect(unknown.stderr).toContain('it has counts');
    const noStore = spawnSync(process.execPath, [cli, 'projections', 'status', '--module', moduleFile], {
      encoding: 'utf8',
      env: { ...process.env, TRELLIS_EVENT_STORE: '' },
    });
    expect(noStore.status).toBe(2);
    expect(noStore.stderr).toContain('--store URL is required');
    const badModule = spawnSync(
      process.execPath,
      [cli, 'projections', 'status', '--module', join(dir, 'missing.mjs'), '--store', store],
      { encoding: 'utf8' },
    );
    expect(badModule.stderr).toContain('TRELLIS_E_PROJECTION_MODULE');
  });
});
