import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Helpers for the aggregation, BFF and shop end-to-end tests: free ports, the real CLI in a
 * child process with its output captured, and polling with a deadline (never fixed sleeps).
 */

export const ROOT = resolve(import.meta.dirname, '../../..');
export const CLI = join(ROOT, 'dist/cli/main.js');

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitUntil<T>(
  check: () => T | Promise<T>,
  what: string,
  deadlineMs = 15_000,
  intervalMs = 50,
): Promise<T> {
  const until = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until)
      throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface Proc {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after a grace period; resolves when it has exited. */
  stop(): Promise<void>;
}

/** Runs `node <args>` from the repository root, capturing its output. */
export function runNode(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return {
    child,
    output: () => out,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A temporary folder, removed by the returned function. */
export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Starts `trellis gateway` on a file written from `yaml`; resolves when the admin says ready. */
export async function startGateway(
  yaml: string,
  dir: string,
): Promise<{ proc: Proc; file: string; admin: string }> {
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  const adminPort = await freePort();
  const proc = runNode([
    CLI,
    'gateway',
    '-c',
    file,
    '--admin',
    `127.0.0.1:${adminPort}`,
    '--log-level',
    'warn',
  ]);
  const admin = `http://127.0.0.1:${adminPort}`;
  await waitUntil(async () => {
    if (proc.child.exitCode !== null) throw new Error(`gateway exited: ${proc.output()}`);
    return (await fetch(`${admin}/readyz`)).ok;
  }, 'the gateway to be ready');
  return { proc, file, admin };
}
