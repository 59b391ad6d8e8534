import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docsExamples, runExample } from '../docs/examples.js';
import { ROOT, type TempDir, tempDir } from '../support/index.js';

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  exports: Record<string, string>;
  bin: Record<string, string>;
  devDependencies: Record<string, string>;
};

interface PackedFile {
  path: string;
}

/** What `npm pack` would put in the tarball (dist must be built: the e2e tier runs after the build). */
async function packList(): Promise<string[]> {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
  });
  const [entry] = JSON.parse(stdout) as [{ files: PackedFile[] }];
  return entry.files.map((f) => f.path);
}

// The package as npm publishes it: what a user gets from `npm install trellis`, not the clone.
describe('the npm package', () => {
  let files: string[];
  beforeAll(async () => {
    files = await packList();
  }, 120_000);

  it('holds the built code, its types, the dashboard, the docs, README and LICENSE, and nothing else', () => {
    const top = [...new Set(files.map((f) => f.split('/')[0]))].sort();
    expect(top).toEqual(['LICENSE', 'README.md', 'dist', 'docs', 'package.json']);
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      const file = target.replace(/^\.\//, '');
      expect(files, `export ${subpath}`).toContain(file);
      expect(files, `types of ${subpath}`).toContain(file.replace(/\.js$/, '.d.ts'));
    }
    for (const bin of Object.values(pkg.bin)) expect(files).toContain(bin.replace(/^\.\//, ''));
    for (const f of ['index.html', 'app.js', 'dom.js', 'panels.js', 'style.css', 'metrics.js']) {
      expect(files).toContain(`dist/admin/dashboard/public/${f}`);
    }
    expect(files.filter((f) => /\.test\.|tsbuildinfo/.test(f))).toEqual([]);
  });
});

// Installed from its tarball into an empty folder, as a user outside the clone would: the CLI
// runs, and every runnable example of the docs works against the installed package.
describe('the package installed from its tarball', () => {
  let dir: TempDir;
  let installed: string;

  beforeAll(async () => {
    dir = tempDir('trellis-pack-');
    const { stdout } = await run(
      'npm',
      ['pack', '--ignore-scripts', '--json', '--pack-destination', dir.path],
      { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 },
    );
    const tarball = join(dir.path, (JSON.parse(stdout) as [{ filename: string }])[0].filename);
    installed = join(dir.path, 'app');
    await run('mkdir', ['-p', installed]);
    writeFileSync(
      join(installed, 'package.json'),
      JSON.stringify({ name: 'app', private: true, type: 'module' }),
    );
    // tsx for the TypeScript examples, as the docs tell a user to add it. --prefer-offline: the
    // dependencies come from npm's cache when `npm ci` already fetched them.
    await run(
      'npm',
      [
        'install',
        tarball,
        `tsx@${pkg.devDependencies.tsx}`,
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
      ],
      { cwd: installed, maxBuffer: 64 * 1024 * 1024, timeout: 20 * 60_000 },
    );
  }, 21 * 60_000);
  afterAll(() => dir?.cleanup());

  it('runs the CLI from node_modules/.bin', async () => {
    const { stdout } = await run(join(installed, 'node_modules/.bin/trellis'), ['--version'], {
      cwd: installed,
    });
    expect(stdout.trim()).toBe(pkg.version);
  });

  it('imports every entry point', async () => {
    const script = Object.keys(pkg.exports)
      .map((sub) => `await import('${pkg.name}/${sub.replace(/^\.\//, '')}');`)
      .join('\n');
    const { stdout } = await run(
      'node',
      ['--input-type=module', '-e', `${script}\nconsole.log('imported')`],
      {
        cwd: installed,
      },
    );
    expect(stdout.trim()).toBe('imported');
  });

  for (const example of docsExamples(ROOT)) {
    it(`runs ${example.page}: ${example.name}`, { timeout: 180_000 }, async () => {
      const folder = tempDir('trellis-pack-example-');
      try {
        await runExample(example, folder.path, { root: ROOT, installed }, 150_000);
      } finally {
        folder.cleanup();
      }
    });
  }
});
