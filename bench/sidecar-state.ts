/**
 * `npm run bench -- sidecar-state` (STATE_BENCH_N=5000 operations per case, 16 in flight)
 *
 * The sidecar's state API (`GET`/`PUT /v1/state/{key}` over HTTP on loopback, as an app in any
 * language calls it) next to the raw store driver doing the same work from this process, in the
 * same run: better-sqlite3 upsert/select on the sidecar's SQLite default, and ioredis SET/GET on
 * Redis (TRELLIS_TEST_REDIS_URL or the loopback default; skipped with a note when unreachable).
 * Target (issue 16): the state API answers >= 0.8x the raw driver's operations per second.
 *
 * The raw driver has no HTTP hop, no JSON check, no revision or change log: against an embedded
 * SQLite (microseconds a call) the HTTP round trip alone decides the ratio; against Redis both
 * sides pay a network round trip, which is the comparison the target is about.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { serviceUrl } from '../src/testing/services.js';
import {
  benchDir,
  freePort,
  ratio,
  startProcess,
  stopAll,
  stopAllOnExit,
  table,
  verdict,
} from './_support/index.js';

const N = Number(process.env.STATE_BENCH_N ?? 5000);
const WINDOW = 16;
const KEYS = 1000;
const value = JSON.stringify({ feature: 'checkout', enabled: true, note: 'x'.repeat(80) });
const root = join(import.meta.dirname, '..');

/** Runs `one(i)` `count` times with WINDOW in flight; operations per second. */
async function rate(one: (i: number) => Promise<unknown> | unknown): Promise<number> {
  const start = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < N) await one(next++);
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  return N / ((performance.now() - start) / 1000);
}

/** Raw, sidecar, sidecar, raw: each side's better run. */
async function compare(raw: () => Promise<number>, sidecar: () => Promise<number>) {
  const r1 = await raw();
  const s1 = await sidecar();
  const s2 = await sidecar();
  const r2 = await raw();
  return { raw: Math.max(r1, r2), sidecar: Math.max(s1, s2) };
}

/** A `trellis sidecar` with `state:` on `url`; resolves with its platform API's address and token. */
async function startSidecar(name: string, state: string) {
  const dir = benchDir();
  const tokenFile = join(dir, `${name}.token.json`);
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `app: { name: ${name}, port: ${await freePort()}, healthPath: /healthz }
listen: { host: 127.0.0.1, port: ${await freePort()} }
api: { port: ${await freePort()} }
admin: { enabled: false }
accessLog: false
state: ${state}
`,
  );
  const proc = startProcess(
    name,
    process.execPath,
    [
      join(root, 'dist/cli/main.js'),
      'sidecar',
      '-c',
      file,
      '--',
      process.execPath,
      join(root, 'bench/_support/token-app.mjs'),
    ],
    { env: { ...process.env, BENCH_TOKEN_FILE: tokenFile } },
  );
  const until = Date.now() + 20_000;
  for (;;) {
    try {
      return JSON.parse(readFileSync(tokenFile, 'utf8')) as { url: string; token: string };
    } catch {
      if (Date.now() > until) throw new Error(`the sidecar did not start:\n${proc.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function stateApi(api: { url: string; token: string }) {
  const pool = new Pool(api.url, { connections: WINDOW, pipelining: 1 });
  const headers = { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' };
  const call = async (method: 'GET' | 'PUT', key: string) => {
    const res = await pool.request({
      method,
      path: `/v1/state/${key}`,
      headers,
      ...(method === 'PUT' ? { body: value } : {}),
    });
    await res.body.arrayBuffer();
    if (res.statusCode >= 300) throw new Error(`state API ${method} answered ${res.statusCode}`);
  };
  return {
    put: (k: string) => call('PUT', k),
    get: (k: string) => call('GET', k),
    close: () => pool.close(),
  };
}

stopAllOnExit();
const rows: (string | number)[][] = [];
const ratios: number[] = [];
try {
  console.log(`sidecar state API vs the raw driver: ${N} operations per case, ${WINDOW} in flight`);
  const key = (i: number) => `bench/k${i % KEYS}`;

  // SQLite: the sidecar's default building block, against better-sqlite3 in this process.
  const dbFile = join(benchDir(), 'raw.db');
  const db = new Sqlite(dbFile);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)');
  const upsert = db.prepare(
    'INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v',
  );
  const select = db.prepare('SELECT v FROM kv WHERE k = ?');
  const sqliteApi = stateApi(await startSidecar('state-sqlite', `sqlite:${join(benchDir(), 'state.db')}`));
  for (const op of ['put', 'get'] as const) {
    const r = await compare(
      () => rate((i) => (op === 'put' ? upsert.run(key(i), value) : select.get(key(i)))),
      () => rate((i) => sqliteApi[op](key(i))),
    );
    rows.push(['sqlite', op, r.sidecar, r.raw, ratio(r.sidecar, r.raw)]);
  }
  await sqliteApi.close();
  db.close();

  const redisUrl = await serviceUrl('redis');
  if (redisUrl) {
    const redis = new Redis(redisUrl);
    const redisApi = stateApi(
      await startSidecar('state-redis', `${redisUrl}?namespace=bench-state-${process.pid}`),
    );
    for (const op of ['put', 'get'] as const) {
      const r = await compare(
        () =>
          rate((i) =>
            op === 'put' ? redis.set(`bench-raw:${key(i)}`, value) : redis.get(`bench-raw:${key(i)}`),
          ),
        () => rate((i) => redisApi[op](key(i))),
      );
      rows.push(['redis', op, r.sidecar, r.raw, ratio(r.sidecar, r.raw)]);
      ratios.push(r.sidecar / r.raw);
    }
    await redisApi.close();
    const keys = await redis.keys('bench-raw:*');
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  } else {
    console.log('redis: skipped (not reachable)');
  }
  console.log(table(['backend', 'op', 'state API ops/s', 'raw driver ops/s', 'ratio'], rows));
  for (const [i, r] of ratios.entries()) {
    console.log(verdict(`redis ${i === 0 ? 'put' : 'get'}: state API vs ioredis`, r, 0.8));
  }
} finally {
  await stopAll();
}
