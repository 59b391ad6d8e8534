import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { leaseConformance } from './conformance.js';
import { SqliteLeaseStore } from './sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-lease-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const url = `sqlite:${join(dir, 'lease.db')}`;

leaseConformance('sqlite', () => SqliteLeaseStore.open(url), {
  shortTtlMs: 150,
  reopen: () => SqliteLeaseStore.open(url),
});
