import { spawn } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Runnable documentation examples. A fenced block preceded by the comment
 *
 *     <!-- trellis-example: NAME [file=PATH] -->
 *
 * belongs to example NAME of its page. Blocks of one example run in the order written, in one
 * fresh temporary folder: a block with `file=PATH` is written to PATH (folders created); any
 * other block must be `sh` and runs with `bash -euo pipefail`; in it, a comment line `#> TEXT`
 * is output the block must print (in that order; `…` matches anything). The folder has `trellis` on PATH
 * (the built CLI), and `node_modules` holding this package as `trellis` plus its dependencies, so
 * `import … from 'trellis/cqrs'` and `node --import tsx app.ts` work as they do for a user.
 */
export interface DocExample {
  /** The page, relative to the repository (`docs/cqrs.md`). */
  page: string;
  name: string;
  blocks: DocBlock[];
}

export interface DocBlock {
  /** Line of the opening fence (1-based). */
  line: number;
  lang: string;
  /** Where the block is written, or undefined for a shell block that runs. */
  file?: string;
  text: string;
}

const MARK = /^<!--\s*trellis-example:\s*([\w.-]+)((?:\s+[\w-]+=\S+)*)\s*-->\s*$/;

/** Every example marked in a Markdown text; throws on a marker that does not sit on a fence. */
export function extractExamples(page: string, markdown: string): DocExample[] {
  const lines = markdown.split('\n');
  const byName = new Map<string, DocExample>();
  for (let i = 0; i < lines.length; i++) {
    // A fence nobody marked is skipped whole: a marker shown inside it is an example of one.
    const plain = /^(```+)/.exec(lines[i]!);
    if (plain) {
      const close = lines.findIndex((l, j) => j > i && l.startsWith(plain[1]!));
      i = close < 0 ? lines.length : close;
      continue;
    }
    const mark = MARK.exec(lines[i]!);
    if (!mark) {
      if (/trellis-example/.test(lines[i]!))
        throw new Error(`${page}:${i + 1}: malformed trellis-example marker`);
      continue;
    }
    const attrs = Object.fromEntries(
      (mark[2] ?? '')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map((kv) => kv.split('=') as [string, string]),
    );
    const unknown = Object.keys(attrs).filter((k) => k !== 'file');
    if (unknown.length)
      throw new Error(`${page}:${i + 1}: unknown trellis-example attribute ${unknown.join(', ')}`);
    const fence = /^(```+)\s*([\w-]*)/.exec(lines[i + 1] ?? '');
    if (!fence)
      throw new Error(`${page}:${i + 1}: a trellis-example marker must sit on the line above a fenced block`);
    const end = lines.findIndex((l, j) => j > i + 1 && l.startsWith(fence[1]!));
    if (end < 0) throw new Error(`${page}:${i + 2}: the fenced block is not closed`);
    const lang = fence[2] ?? '';
    if (!attrs.file && lang !== 'sh' && lang !== 'bash') {
      throw new Error(`${page}:${i + 2}: a runnable block without file= must be sh (it is "${lang}")`);
    }
    const example = byName.get(mark[1]!) ?? { page, name: mark[1]!, blocks: [] };
    byName.set(example.name, example);
    example.blocks.push({
      line: i + 2,
      lang,
      file: attrs.file,
      text: lines.slice(i + 2, end).join('\n') + '\n',
    });
    i = end;
  }
  return [...byName.values()];
}

/** The examples of every page in `docsDir`. */
export function docsExamples(root: string): DocExample[] {
  const dir = join(root, 'docs');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .flatMap((f) => extractExamples(`docs/${f}`, readFileSync(join(dir, f), 'utf8')));
}

/**
 * Where an example finds Trellis: this clone (`root`, the built CLI and its node_modules), or a
 * folder where the package was installed from its tarball (`installed`, as a user has it).
 */
export interface ExampleSource {
  root: string;
  installed?: string;
}

/** Prepares `folder` as a user's project: `trellis` on PATH and this package in node_modules. */
export function prepareFolder(folder: string, source: ExampleSource): { PATH: string } {
  if (source.installed !== undefined) {
    // The real install: its node_modules (trellis, its dependencies, tsx) and its .bin/trellis.
    symlinkSync(join(source.installed, 'node_modules'), join(folder, 'node_modules'), 'dir');
    return { PATH: `${join(source.installed, 'node_modules/.bin')}:${process.env.PATH}` };
  }
  const { root } = source;
  const bin = join(folder, '.bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'trellis'),
    `#!/bin/sh\nexec "${process.execPath}" "${join(root, 'dist/cli/main.js')}" "$@"\n`,
  );
  chmodSync(join(bin, 'trellis'), 0o755);
  const modules = join(folder, 'node_modules');
  mkdirSync(modules, { recursive: true });
  symlinkSync(root, join(modules, 'trellis'), 'dir');
  for (const entry of readdirSync(join(root, 'node_modules'))) {
    if (entry === 'trellis' || entry.startsWith('.')) continue;
    symlinkSync(join(root, 'node_modules', entry), join(modules, entry));
  }
  return { PATH: `${bin}:${join(root, 'node_modules/.bin')}:${process.env.PATH}` };
}

const LOCK = join(tmpdir(), 'trellis-docs-examples.lock');

/**
 * Examples listen on the ports the docs print (8080, 3001…), so two test files running
 * examples at once (the clone's and the installed package's) would take each other's ports:
 * one example runs at a time across processes. The lock is a folder (mkdir is atomic) holding
 * its owner's pid; a lock whose owner died is taken over.
 */
async function exclusively<T>(run: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      break;
    } catch {
      if (!ownerAlive()) rmSync(LOCK, { recursive: true, force: true });
      else await sleep(100);
    }
  }
  try {
    return await run();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

function ownerAlive(): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
  } catch {
    // Just made and its pid not written yet (alive), unless it stayed so for seconds (its
    // owner died between the two calls); or gone already (then mkdir is retried at once).
    try {
      return Date.now() - statSync(LOCK).mtimeMs < 5_000;
    } catch {
      return true;
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs one example in `folder`; resolves with what it printed, rejects with it on failure. */
export function runExample(
  example: DocExample,
  folder: string,
  source: ExampleSource,
  timeoutMs = 90_000,
): Promise<string> {
  return exclusively(() => runBlocks(example, folder, source, timeoutMs));
}

async function runBlocks(
  example: DocExample,
  folder: string,
  source: ExampleSource,
  timeoutMs: number,
): Promise<string> {
  const { PATH } = prepareFolder(folder, source);
  let output = '';
  for (const block of example.blocks) {
    if (block.file) {
      const path = join(folder, block.file);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, block.text);
      continue;
    }
    const child = spawn('bash', ['-euo', 'pipefail', '-c', block.text], {
      cwd: folder,
      env: { ...process.env, PATH, TRELLIS_LOG_LEVEL: process.env.TRELLIS_LOG_LEVEL ?? 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so whatever it left running in the background is stopped too.
      detached: true,
    });
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      output += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      output += c;
    });
    const timer = setTimeout(() => killGroup(child.pid), timeoutMs);
    const before = output.length;
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    clearTimeout(timer);
    killGroup(child.pid);
    if (code !== 0) {
      throw new Error(
        `${example.page}:${block.line} (example "${example.name}") exited ${code ?? 'on timeout'}:\n${output}`,
      );
    }
    const missing = missingOutput(block.text, output.slice(before));
    if (missing) {
      throw new Error(
        `${example.page}:${block.line} (example "${example.name}") did not print "${missing}" (in order); it printed:\n${output.slice(before)}`,
      );
    }
  }
  return output;
}

/** The first `#> …` line of `script` that `printed` lacks (in order), or undefined. */
export function missingOutput(script: string, printed: string): string | undefined {
  const lines = printed.split('\n');
  let at = 0;
  for (const m of script.matchAll(/^\s*#> ?(.*)$/gm)) {
    const want = m[1]!.trimEnd();
    const pattern = new RegExp(
      want
        .split('…')
        .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*'),
    );
    const found = lines.findIndex((l, i) => i >= at && pattern.test(l));
    if (found < 0) return want;
    at = found + 1;
  }
  return undefined;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
