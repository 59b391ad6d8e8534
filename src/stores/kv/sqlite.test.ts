import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { kvConformance } from './conformance.js';
import { SqliteKeyValueStore } from './sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-kv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const url = `sqlite:${join(dir, 'kv.db')}`;

kvConformance('sqlite', () => SqliteKeyValueStore.open(url), {
  reopen: () => SqliteKeyValueStore.open(url),
  gap: { open: () => SqliteKeyValueStore.open(`sqlite:${join(dir, 'gap.db')}?retain=50`) },
});
