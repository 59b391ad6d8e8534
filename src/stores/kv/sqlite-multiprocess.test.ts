import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { KvChange } from '../types.js';
import { SqliteKeyValueStore } from './sqlite.js';

const run = promisify(execFile);
const child = join(import.meta.dirname, 'fixtures', 'sqlite-child.ts');
const dir = mkdtempSync(join(tmpdir(), 'trellis-mp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function spawnChild(...args: string[]): Promise<number[]> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', child, ...args], { timeout: 60_000 });
  return JSON.parse(stdout) as number[];
}

describe('sqlite: several processes on one file', () => {
  it('a watcher here sees every put made by two other processes, once, in revision order', async () => {
    const url = `sqlite:${join(dir, 'kv.db')}?pollMs=20`;
    const store = await SqliteKeyValueStore.open(url);
    try {
      const { revision } = await store.list('mp/');
      const seen: KvChange[] = [];
      const ac = new AbortController();
      const watching = (async () => {
        for await (const c of store.watch('mp/', { fromRevision: revision, signal: ac.signal })) {
          seen.push(c);
          if (seen.length === 400) ac.abort();
        }
      })();
      const [a, b] = await Promise.all([
        spawnChild('kv', url, 'mp/', '200'),
        spawnChild('kv', url, 'mp/', '200'),
      ]);
      await watching;
      const written = [...a!, ...b!].sort((x, y) => x - y);
      expect(new Set(written).size).toBe(400);
      expect(seen.map((c) => c.revision)).toEqual(written);
    } finally {
      await store.close();
    }
  }, 90_000);

  it('leases taken in turn by two processes get unique, growing tokens', async () => {
    const url = `sqlite:${join(dir, 'lease.db')}`;
    const [a, b] = await Promise.all([
      spawnChild('lease', url, 'job', '50'),
      spawnChild('lease', url, 'job', '50'),
    ]);
    for (const tokens of [a!, b!]) {
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
    }
    const all = [...a!, ...b!].sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  }, 90_000);
});
