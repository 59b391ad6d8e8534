import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, runCli, spawnCli, type TempDir, tempDir, waitUntil } from '../support/index.js';

/** A bundler-like build: HTML naming its content-hashed chunks. */
function build(dir: string, version: string, chunks: number, chunkBytes = 2048): string[] {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'assets'), { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < chunks; i++) {
    const name = `assets/chunk-${version}${String(i).padStart(6, '0')}.js`;
    writeFileSync(
      join(dir, name),
      `/*${randomBytes(chunkBytes).toString('base64')}*/\nexport const v = "${version}${i}";\n`,
    );
    names.push(name);
  }
  writeFileSync(
    join(dir, 'index.html'),
    `<!doctype html><title>${version}</title>${names.map((n) => `<script src="/${n}"></script>`).join('')}`,
  );
  return names;
}

async function serve(dir: string): Promise<{ proc: CliProcess; url: string; admin: string }> {
  const proc = spawnCli(['static', 'serve', dir, '--port', '0', '--admin', '127.0.0.1:0']);
  const line = await proc.waitForOutput(/"msg":"static server started"/);
  const ports = (JSON.parse(line) as { ports: Record<string, number> }).ports;
  return { proc, url: `http://127.0.0.1:${ports.main}`, admin: `http://127.0.0.1:${ports.admin}` };
}

describe('trellis static', () => {
  let tmp: TempDir;
  const procs: CliProcess[] = [];

  beforeAll(() => {
    tmp = tempDir('trellis-e2e-static-');
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    tmp.cleanup();
  });

  it('serve: a folder with its admin listener; compress: variants the server then uses', async () => {
    const dir = join(tmp.path, 'plain');
    build(dir, 'aaa', 2);
    writeFileSync(join(dir, 'app.js'), 'console.log("hello");\n'.repeat(100));
    const compressed = await runCli(['static', 'compress', dir]);
    expect(compressed.code).toBe(0);
    expect(compressed.stdout).toMatch(/compressed app\.js \(2 variants\)/);
    expect(existsSync(join(dir, 'app.js.br'))).toBe(true);
    const s = await serve(dir);
    procs.push(s.proc);
    const res = await fetch(`${s.url}/app.js`, { headers: { 'accept-encoding': 'br' } });
    expect(res.headers.get('content-encoding')).toBe('br');
    expect(await res.text()).toBe('console.log("hello");\n'.repeat(100));
    expect((await fetch(`${s.admin}/healthz`)).status).toBe(200);
    expect(await s.proc.stop('SIGTERM')).toBe(0);
  });

  it('publish --dry-run prints the plan and writes nothing', async () => {
    const src = join(tmp.path, 'dry-src');
    build(src, 'aaa', 2);
    const target = join(tmp.path, 'dry-target');
    const r = await runCli(['static', 'publish', src, '--to', target, '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/plan for release \S+ \(live now: none\), nothing written/);
    expect(r.stdout).toMatch(/assets +assets\/chunk-aaa000000\.js/);
    expect(r.stdout).toMatch(/switch +\.trellis\/live\.json/);
    expect(existsSync(target)).toBe(false);
    const bad = await runCli(['static', 'publish', src]);
    expect(bad.code).toBe(2);
  });

  it('a publish under load shows zero asset 404s; a publish killed with -9 leaves the previous release live', async () => {
    const target = join(tmp.path, 'site');
    const src = join(tmp.path, 'src');
    const oldAssets = build(src, 'aaa', 20);
    expect((await runCli(['static', 'publish', src, '--to', target])).code).toBe(0);
    const s = await serve(target);
    procs.push(s.proc);

    // Clients load the live HTML and every chunk it names, plus every chunk of the old release.
    let stop = false;
    const failures: string[] = [];
    const titles = new Set<string>();
    let requests = 0;
    const client = async () => {
      while (!stop) {
        const html = await (await fetch(`${s.url}/`)).text();
        titles.add(/<title>(\w+)/.exec(html)?.[1] ?? '?');
        for (const path of [...[...html.matchAll(/src="\/([^"]+)"/g)].map((m) => m[1]!), ...oldAssets]) {
          const res = await fetch(`${s.url}/${path}`);
          await res.arrayBuffer();
          requests++;
          if (res.status !== 200) failures.push(`${res.status} ${path}`);
        }
      }
    };
    const load = Promise.all([client(), client()]);

    // Killed half-way through uploading a big release: the old one stays live, whole.
    build(src, 'ccc', 600, 8192);
    const killed = spawnCli(['static', 'publish', src, '--to', target]);
    await killed.waitForOutput(/^uploaded assets\//, 60_000);
    killed.child.kill('SIGKILL');
    const { signal } = await killed.exited;
    expect(signal).toBe('SIGKILL');
    expect(killed.output()).not.toMatch(/is live/);

    // A good release published meanwhile switches every client.
    build(src, 'bbb', 30);
    const published = await runCli(['static', 'publish', src, '--to', target]);
    expect(published.code).toBe(0);
    expect(published.stdout).toMatch(/release \S+ is live/);
    await waitUntil(() => titles.has('bbb'), 'clients on the new release', 20_000);
    stop = true;
    await load;
    expect(failures).toEqual([]);
    expect(titles.has('aaa')).toBe(true);
    expect(titles.has('ccc')).toBe(false);
    expect(requests).toBeGreaterThan(40);
    for (const path of oldAssets) expect((await fetch(`${s.url}/${path}`)).status).toBe(200);
  });
});
