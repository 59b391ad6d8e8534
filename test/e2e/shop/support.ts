import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { freePort, ROOT, waitUntil } from '../support/index.js';

/**
 * `npm start` as a newcomer runs it: start.mjs with a copy of the shop's files on free ports (so
 * it runs beside anything else, a second shop included) and its data in a temporary folder.
 */

/** Every port the shop's files name, each replaced by a free one in the copy. */
export const DEFAULT_PORTS = [
  8080, 9901, 9902, 9904, 9921, 9930, 9940, 7070, 3001, 3002, 3003, 3004, 3005, 3006, 3007, 3021, 3030, 3040,
  3041, 3042, 3050, 3051,
];
/** The shop's files start.mjs reads, relative to examples/shop. */
const FILES = ['gateway.yaml', 'host.yaml', 'pipeline.yaml', 'ambassador.yaml', 'wishlist/sidecar.yaml'];

export interface Shop {
  proc: Proc;
  /** The copy of gateway.yaml the shop runs. */
  file: string;
  data: string;
  ports: Map<number, number>;
  /** The free port that stands for one of the files' default ports. */
  port(p: number): number;
  /** http://127.0.0.1:<the port standing for p> */
  url(p: number): string;
}

/**
 * Writes a copy of the shop's files on free ports into `dir` and starts start.mjs with it. A port
 * taken between choosing it and the shop's check (other tests run beside) makes the shop refuse
 * to start, as it should: then new ports are chosen, up to three times.
 */
export async function startShop(
  dir: string,
  options: { args?: string[]; env?: Record<string, string> } = {},
): Promise<Shop> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startShopOnce(dir, options);
    } catch (err) {
      const clash = /cannot start: port|the address is taken/.test(String(err));
      if (attempt === 3 || !clash) throw err;
    }
  }
}

async function startShopOnce(
  dir: string,
  options: { args?: string[]; env?: Record<string, string> },
): Promise<Shop> {
  const ports = new Map<number, number>();
  for (const p of DEFAULT_PORTS) ports.set(p, await freePort());
  const port = (p: number) => ports.get(p)!;
  const shop = join(ROOT, 'examples/shop');
  for (const name of FILES) {
    let text = readFileSync(join(shop, name), 'utf8');
    text = text.replace(/(port: |127\.0\.0\.1:|admin: )(\d{4})\b/g, (m, before: string, p: string) =>
      ports.has(Number(p)) ? `${before}${port(Number(p))}` : m,
    );
    // The copy lives in a temporary folder: the files it refers to stay where they are.
    text = text.replace(/(file|module): \.\/(acl|services)\//g, `$1: ${shop}/$2/`);
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const file = join(dir, 'gateway.yaml');
  const data = join(dir, 'data');
  const proc = runNode(
    [join(shop, 'start.mjs'), '--config', file, '--data', data, ...(options.args ?? [])],
    options.env,
  );
  await waitUntil(
    () => {
      if (proc.child.exitCode !== null) throw new Error(`the shop exited:\n${proc.output()}`);
      return proc.output().includes('Ctrl-C stops everything');
    },
    'the shop to print its tour',
    120_000,
  );
  return { proc, file, data, ports, port, url: (p) => `http://127.0.0.1:${port(p)}` };
}

/** Stops a shop that is still running (SIGKILL: the tests that care about SIGINT send it themselves). */
export async function killShop(shop: Shop | undefined): Promise<void> {
  if (shop && shop.proc.child.exitCode === null) {
    shop.proc.child.kill('SIGKILL');
    await shop.proc.exited;
  }
}

export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface Proc {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null }>;
}

/** Runs `node <args>` from the repository root with its output captured (start.mjs is not the CLI). */
export function runNode(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
  }
  const exited = new Promise<{ code: number | null }>((r) => child.once('exit', (code) => r({ code })));
  return { child, output: () => out, exited };
}

/** One `curl` line of the tour: its URL, method, headers and body. */
export interface TourCall {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
}

/** The curl lines the tour prints, as calls to make. */
export function tourCalls(output: string): TourCall[] {
  return [...output.matchAll(/^\s+curl [^\n]*?(http:\/\/\S+)([^\n#]*)/gm)].map((m) => {
    const rest = m[2]!;
    const headers: Record<string, string> = {};
    for (const h of rest.matchAll(/-H '([^:]+): ([^']*)'/g)) headers[h[1]!.toLowerCase()] = h[2]!;
    const body = /-d '([^']*)'/.exec(rest)?.[1];
    const method = /-X (\w+)/.exec(rest)?.[1] ?? 'GET';
    return { url: m[1]!, method, headers, ...(body !== undefined ? { body } : {}) };
  });
}
