import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Shared helpers for end-to-end tests: the real `trellis` CLI (built: `npm run build`) in child
 * processes, origin servers that record what reached them, raw-socket requests, free ports and
 * polling with a deadline. No helper sleeps for a fixed time to wait for something.
 */

/** The repository root and the built CLI. */
export const ROOT = resolve(import.meta.dirname, '../../..');
export const CLI = join(ROOT, 'dist/cli/main.js');

/** A port nothing listens on right now (bind to 0, read it, release it). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/** Polls `check` every 25 ms until it returns a truthy value; throws after `deadlineMs`. */
export async function waitUntil<T>(
  check: () => T | Promise<T>,
  what: string,
  deadlineMs = 15_000,
): Promise<NonNullable<T>> {
  const until = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) {
      throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A temporary folder removed by `cleanup()`. */
export interface TempDir {
  readonly path: string;
  /** Writes a file in the folder and returns its path. */
  write(name: string, text: string): string;
  cleanup(): void;
}

export function tempDir(prefix = 'trellis-e2e-'): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    write(name, text) {
      const file = join(path, name);
      writeFileSync(file, text);
      return file;
    },
    cleanup: () => rmSync(path, { recursive: true, force: true }),
  };
}

/** A running CLI process. */
export interface CliProcess {
  readonly child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the first output line matching `pattern` (deadline 20 s). */
  waitForOutput(pattern: RegExp, deadlineMs?: number): Promise<string>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGTERM), SIGKILL after `graceMs`; resolves with the exit code. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
}

/** Starts `trellis <args>` (the built CLI) with its output captured. */
export function spawnCli(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, TRELLIS_LOG_LEVEL: 'info', ...options.env },
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
    waitForOutput(pattern, deadlineMs = 20_000) {
      return waitUntil(
        () => {
          if (child.exitCode !== null) throw new Error(`the process exited (${child.exitCode}):\n${out}`);
          return out.split('\n').find((line) => pattern.test(line));
        },
        `output matching ${pattern}`,
        deadlineMs,
      );
    },
    async stop(signal = 'SIGTERM', graceMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const { code } = await exited;
        clearTimeout(timer);
        return code;
      }
      return child.exitCode;
    },
  };
}

/** Runs `trellis <args>` to completion. */
export async function runCli(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  return { code, stdout, stderr };
}

/** A `trellis gateway` child process with its bound ports. */
export interface GatewayProcess extends CliProcess {
  /** `http://127.0.0.1:<main port>` */
  readonly url: string;
  /** `http://127.0.0.1:<admin port>` */
  readonly adminUrl: string;
  /** Bound ports by listener: `main`, frontends with their own listener, `admin`. */
  readonly ports: Record<string, number>;
  /** The gateway file (rewrite it to trigger a reload). */
  readonly file: string;
}

/**
 * Writes `yaml` to `file` and starts `trellis gateway -c file --admin 127.0.0.1:0`; resolves
 * once it logged its bound ports. Use `listen: { port: 0 }` for a free port.
 */
export async function startGatewayCli(
  file: string,
  yaml: string,
  options: { args?: string[]; env?: Record<string, string> } = {},
): Promise<GatewayProcess> {
  writeFileSync(file, yaml);
  const proc = spawnCli(['gateway', '-c', file, '--admin', '127.0.0.1:0', ...(options.args ?? [])], {
    ...(options.env ? { env: options.env } : {}),
  });
  const ports = await startedPorts(proc, 'gateway');
  return {
    ...proc,
    ports,
    file,
    url: `http://127.0.0.1:${ports.main}`,
    adminUrl: `http://127.0.0.1:${ports.admin}`,
  };
}

/**
 * The ports a `trellis gateway|ambassador` logged in its "started" line. A process that does not
 * start is killed before the error is thrown, so a failed beforeAll leaves nothing running.
 */
async function startedPorts(
  proc: CliProcess,
  role: 'gateway' | 'ambassador',
): Promise<Record<string, number>> {
  try {
    const line = await proc.waitForOutput(new RegExp(`"msg":"${role} started"`));
    return (JSON.parse(line) as { ports: Record<string, number> }).ports;
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
}

export interface AmbassadorProcess extends CliProcess {
  /** Bound ports by remote name (listeners of their own), `main` (the shared one) and `admin`. */
  readonly ports: Record<string, number>;
}

/** Starts `trellis ambassador -c file --admin 127.0.0.1:0`; resolves once it logged its ports. */
export async function startAmbassadorCli(
  file: string,
  options: { env?: Record<string, string> } = {},
): Promise<AmbassadorProcess> {
  const proc = spawnCli(['ambassador', '-c', file, '--admin', '127.0.0.1:0'], options);
  return { ...proc, ports: await startedPorts(proc, 'ambassador') };
}

/** One request as an origin saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A loopback HTTP origin that records every request. */
export interface Origin {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly server: Server;
  readonly requests: SeenRequest[];
  /** Closes the listener and every open connection (like a crash, but in-process). */
  close(): Promise<void>;
}

/** Answers a request; by default an origin echoes `{ origin, method, url, headers, body }` as JSON. */
export type OriginHandler = (req: SeenRequest, res: ServerResponse) => void | Promise<void>;

/** Starts an origin on 127.0.0.1 (`port` 0: any free one). */
export async function startOrigin(name: string, handler?: OriginHandler, port = 0): Promise<Origin> {
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      const seen: SeenRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      requests.push(seen);
      if (handler) {
        Promise.resolve(handler(seen, res)).catch(() => res.destroy());
        return;
      }
      const text = JSON.stringify({ origin: name, ...seen });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  const bound = (server.address() as { port: number }).port;
  return {
    name,
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    server,
    requests,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/**
 * Sends raw bytes on a fresh TCP connection and resolves with everything read until the server
 * closes it or `idleMs` passes without data (for probes node's own client would refuse to send).
 */
export function rawRequest(port: number, bytes: string | Buffer, idleMs = 1_000): Promise<string> {
  return new Promise((resolveText, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const done = () => {
      socket.destroy();
      resolveText(text);
    };
    socket.setTimeout(idleMs, done);
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      text += c;
    });
    socket.once('end', done);
    socket.once('close', done);
    socket.once('error', (err) => (text ? done() : reject(err)));
    socket.write(bytes);
  });
}

/** The status code of the first response in a raw HTTP/1.1 reply, or 0. */
export function rawStatus(reply: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(reply);
  return m ? Number(m[1]) : 0;
}

/** An origin in its own process, for faults an in-process server cannot show (kill -9, SIGSTOP). */
export interface OriginProcess {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly child: ChildProcess;
  /** Sends a signal (SIGKILL: crash, SIGSTOP/SIGCONT: freeze and thaw) and, for SIGKILL, waits for the exit. */
  signal(signal: NodeJS.Signals): Promise<void>;
}

// The child answers every request with `{"origin": NAME, "method", "url"}` and prints its port.
const ORIGIN_SCRIPT = `
const name = process.argv[1];
const server = require('node:http').createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({ origin: name, method: req.method, url: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => console.log('port ' + server.address().port));
`;

/** Starts an echo origin in a child process (port 0: any free one). */
export async function spawnOrigin(name: string, port = 0): Promise<OriginProcess> {
  const child = spawn(process.execPath, ['-e', ORIGIN_SCRIPT, name, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  const bound = await waitUntil(() => {
    if (child.exitCode !== null) throw new Error(`origin ${name} exited with ${child.exitCode}`);
    const m = /port (\d+)/.exec(out);
    return m ? Number(m[1]) : undefined;
  }, `origin ${name} to listen`);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    name,
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    child,
    async signal(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      if (signal === 'SIGKILL') await exited;
    },
  };
}
