/**
 * Running wrk and reading its report: requests per second, latency percentiles (with
 * `--latency`), and every kind of error wrk counts, so a target that answers fast but wrong
 * cannot win.
 */
import { spawn } from 'node:child_process';
import { canPin } from './process.js';

export interface WrkOptions {
  url: string;
  /** Pin wrk to this CPU. */
  cpu?: number;
  threads?: number;
  connections?: number;
  /** Seconds. */
  durationS?: number;
  headers?: Record<string, string>;
  /** A wrk Lua script (e.g. setting `wrk.method` and `wrk.body` for POST load). */
  script?: string;
}

export interface WrkResult {
  requests: number;
  requestsPerSec: number;
  /** Latency percentiles in milliseconds. */
  latencyMs: { p50: number; p75: number; p90: number; p99: number };
  errors: { connect: number; read: number; write: number; timeout: number; non2xx3xx: number };
  /** Total errors of every kind. */
  errorCount: number;
  raw: string;
}

/** Runs wrk once and parses its output; rejects when wrk fails or prints no summary. */
export function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = [
    `-t${options.threads ?? 1}`,
    `-c${options.connections ?? 64}`,
    // wrk takes whole seconds only (`-d2.5s` is a usage error): callers may pass halves.
    `-d${Math.max(1, Math.round(options.durationS ?? 5))}s`,
    '--latency',
    ...Object.entries(options.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
    ...(options.script === undefined ? [] : ['-s', options.script]),
    options.url,
  ];
  const [cmd, argv] =
    options.cpu !== undefined && canPin
      ? ['taskset', ['-c', String(options.cpu), 'wrk', ...args]]
      : ['wrk', args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited with ${code}:\n${out}`));
      try {
        resolve(parseWrk(out));
      } catch (err) {
        reject(err);
      }
    });
  });
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

/** `812.00us` / `1.23ms` / `2.00s` to milliseconds. */
export function parseWrkDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) throw new Error(`cannot read wrk duration ${JSON.stringify(text)}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** Parses wrk 4's text report (run with --latency). */
export function parseWrk(out: string): WrkResult {
  const number = (re: RegExp) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : 0;
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!rps) throw new Error(`wrk printed no summary:\n${out}`);
  const percentile = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    if (!m) throw new Error(`wrk printed no ${p}% latency (was --latency given?):\n${out}`);
    return parseWrkDuration(m[1]!);
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = {
    connect: socket ? Number(socket[1]) : 0,
    read: socket ? Number(socket[2]) : 0,
    write: socket ? Number(socket[3]) : 0,
    timeout: socket ? Number(socket[4]) : 0,
    non2xx3xx: number(/Non-2xx or 3xx responses: (\d+)/),
  };
  return {
    requests: number(/(\d+) requests in/),
    requestsPerSec: Number(rps[1]),
    latencyMs: { p50: percentile('50'), p75: percentile('75'), p90: percentile('90'), p99: percentile('99') },
    errors,
    errorCount: Object.values(errors).reduce((a, b) => a + b, 0),
    raw: out,
  };
}
