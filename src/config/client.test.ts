import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openKeyValueStore } from '../stores/kv/index.js';
import { MemoryKeyValueStore } from '../stores/kv/memory.js';
import type { ConfigChange } from './api.js';
import { type ConfigClient, createConfigClient } from './client.js';
import { ConfigRepository } from './repository.js';
import { type ConfigServer, startConfigServer } from './server.js';

async function until<T>(probe: () => T | undefined | false, ms = 8000): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) throw new Error('condition not met before the deadline');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmpFile() {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-cfg-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'lkg.json');
}

/** A config server the test can stop and start again on the same port, over one store. */
async function restartableServer(retainChanges?: number) {
  const repo = new ConfigRepository(new MemoryKeyValueStore(retainChanges ? { retainChanges } : {}));
  let server: ConfigServer | undefined = await startConfigServer({
    api: repo,
    readToken: 'r',
    writeToken: 'w',
  });
  const port = Number(new URL(server.url).port);
  const url = server.url;
  cleanups.push(() => server?.close());
  return {
    repo,
    url,
    stop: async () => {
      await server?.close();
      server = undefined;
    },
    start: async () => {
      server = await startConfigServer({ api: repo, readToken: 'r', writeToken: 'w', port });
    },
  };
}

async function client(options: Parameters<typeof createConfigClient>[0]): Promise<ConfigClient> {
  const c = await createConfigClient({ backoff: { initialMs: 20, maxMs: 100 }, ...options });
  cleanups.push(() => c.close());
  return c;
}

describe('ConfigClient', () => {
  it('reads typed values with secrets resolved only in the client, and follows changes in order', async () => {
    const repo = new ConfigRepository(new MemoryKeyValueStore());
    await repo.set('app/db', 'host: db1\npassword: secret://env/TEST_DB_PASSWORD\n');
    const c = await client({ source: repo, prefix: 'app/', env: { TEST_DB_PASSWORD: 's3cr3t' } });
    const schema = z.object({ host: z.string(), password: z.string() });
    expect(c.get('app/db', schema)).toEqual({ host: 'db1', password: 's3cr3t' });
    // The stored document keeps the reference.
    expect(c.document('app/db')?.content).toContain('secret://env/TEST_DB_PASSWORD');
    expect(() => c.get('app/db', z.object({ host: z.number() }))).toThrow(/host: /);

    const seen: ConfigChange[] = [];
    c.subscribe((ch) => seen.push(ch));
    for (let i = 1; i <= 20; i++) await repo.set(`app/k${i % 3}`, `n: ${i}`);
    await repo.delete('app/k0');
    await until(() => seen.length === 21);
    expect(seen.map((s) => s.revision)).toEqual(
      [...new Set(seen.map((s) => s.revision))].sort((a, b) => a - b),
    );
    expect(seen.at(-1)).toMatchObject({ type: 'delete', key: 'app/k0' });
    expect(c.get('app/k1')).toEqual({ n: 19 });
    expect(c.keys()).toEqual(['app/db', 'app/k1', 'app/k2']);
  });

  it('health() follows the revision it serves and when it last heard from the store', async () => {
    const repo = new ConfigRepository(new MemoryKeyValueStore());
    await repo.set('app/a', 'v: 1');
    const c = await client({ source: repo, prefix: 'app/' });
    const first = c.health();
    expect(first).toMatchObject({ ok: true, source: 'store', revision: c.revision });
    const next = await repo.set('app/a', 'v: 2');
    await until(() => c.get<{ v: number }>('app/a')?.v === 2);
    const after = c.health();
    expect(after.revision).toBe(next.revision);
    expect(Date.parse(after.lastSyncAt!)).toBeGreaterThanOrEqual(Date.parse(first.lastSyncAt!));
  });

  it('serves last-known-good while the server is down, reports it in health, and catches up', async () => {
    const srv = await restartableServer();
    const cacheFile = tmpFile();
    await srv.repo.set('svc/a', 'v: 1');
    const c = await client({ source: srv.url, token: 'r', prefix: 'svc/', cacheFile });
    expect(c.health()).toMatchObject({ ok: true, source: 'store' });
    const seen: string[] = [];
    c.subscribe((ch) => seen.push(`${ch.type}:${ch.key}:${ch.revision}`));

    await srv.stop();
    await until(() => c.health().source === 'last-known-good');
    expect(c.health()).toMatchObject({ ok: false, error: expect.stringMatching(/./) });
    expect(c.get('svc/a')).toEqual({ v: 1 });

    await until(() => existsSync(cacheFile));
    // A second process starting now, with the server still down, serves the copy on disk.
    const cold = await client({ source: srv.url, token: 'r', prefix: 'svc/', cacheFile });
    expect(cold.health().source).toBe('last-known-good');
    expect(cold.get('svc/a')).toEqual({ v: 1 });

    // Changes made while the server is down arrive, in order, once it is back.
    const b = await srv.repo.set('svc/b', 'v: 2');
    const a2 = await srv.repo.set('svc/a', 'v: 3');
    await srv.start();
    await until(() => c.health().ok && c.get<{ v: number }>('svc/a')?.v === 3);
    expect(seen).toEqual([`put:svc/b:${b.revision}`, `put:svc/a:${a2.revision}`]);
    await until(() => cold.health().ok && cold.get<{ v: number }>('svc/a')?.v === 3);
    expect(cold.get('svc/b')).toEqual({ v: 2 });
  });

  it('resyncs after a gap signal and tells subscribers what changed meanwhile', async () => {
    const srv = await restartableServer(3);
    await srv.repo.set('g/a', 'v: 0');
    await srv.repo.set('g/gone', 'v: 0');
    const c = await client({ source: srv.url, token: 'r', prefix: 'g/' });
    const seen: string[] = [];
    c.subscribe((ch) => seen.push(`${ch.type}:${ch.key}`));
    await srv.stop();
    await until(() => !c.health().ok);
    for (let i = 1; i <= 10; i++) await srv.repo.set('g/a', `v: ${i}`);
    await srv.repo.delete('g/gone');
    await srv.start();
    await until(() => c.get<{ v: number }>('g/a')?.v === 10);
    expect(seen.sort()).toEqual(['delete:g/gone', 'put:g/a']);
    expect(c.health().ok).toBe(true);
  });

  it('keeps only references on disk, never resolved secret values', async () => {
    const repo = new ConfigRepository(new MemoryKeyValueStore());
    await repo.set('s/x', '{"apiKey": "secret://env/TEST_API_KEY"}');
    const cacheFile = tmpFile();
    const c = await client({
      source: repo,
      prefix: 's/',
      cacheFile,
      env: { TEST_API_KEY: 'ultra-secret-value' },
    });
    expect(c.get('s/x')).toEqual({ apiKey: 'ultra-secret-value' });
    await c.close();
    const disk = readFileSync(cacheFile, 'utf8');
    expect(disk).toContain('secret://env/TEST_API_KEY');
    expect(disk).not.toContain('ultra-secret-value');
    expect(JSON.stringify(c.health())).not.toContain('ultra-secret-value');
  });

  it('starts on last-known-good when a store URL cannot be opened, and connects once it can', async () => {
    const cacheFile = tmpFile();
    const dir = mkdtempSync(join(tmpdir(), 'trellis-cfg-store-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const here = join(dir, 'db');
    const away = join(dir, 'db-away');
    mkdirSync(here);
    const url = `sqlite:${join(here, 'config.db')}`;
    const repo = new ConfigRepository(await openKeyValueStore(url));
    await repo.set('lazy/a', 'v: 1');
    const first = await client({ source: url, prefix: 'lazy/', cacheFile });
    await first.close();
    await repo.close();
    // The store cannot be opened: its folder is now a plain file.
    renameSync(here, away);
    writeFileSync(here, 'not a folder');
    const c = await client({ source: url, prefix: 'lazy/', cacheFile });
    expect(c.health()).toMatchObject({ ok: false, source: 'last-known-good' });
    expect(c.get('lazy/a')).toEqual({ v: 1 });
    rmSync(here);
    renameSync(away, here);
    await until(() => c.health().ok);
    expect(c.health().source).toBe('store');
  });

  it('fails clearly when neither the store nor a copy is available', async () => {
    await expect(
      createConfigClient({ source: 'http://127.0.0.1:1', backoff: { initialMs: 10, maxMs: 10 } }),
    ).rejects.toMatchObject({ code: 'TRELLIS_E_CONFIG_UNAVAILABLE' });
  });

  it('evaluates feature flags from flag documents', async () => {
    const repo = new ConfigRepository(new MemoryKeyValueStore());
    await repo.set('flags/new-ui', 'rules:\n  - when: { country: NL }\n    serve: true\nrollout: 0\n');
    const c = await client({ source: repo });
    expect(c.flag('new-ui', { key: 'u1', attributes: { country: 'NL' } })).toBe(true);
    expect(c.flag('new-ui', { key: 'u1', attributes: { country: 'DE' } })).toBe(false);
    expect(c.flag('missing')).toBe(false);
  });
});
