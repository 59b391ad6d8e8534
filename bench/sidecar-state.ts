/**
 * `npm run bench -- sidecar-state` (STATE_BENCH_N=5000 operations per case, 16 in flight on both
 * sides, bulk calls of STATE_BENCH_BULK=100 keys, 10 N keys per bulk case; STATE_BENCH_CLI=path/to/cli/main.js runs another build)
 *
 * The sidecar's state API (HTTP on loopback, as an app in any language calls it) next to the raw
 * store driver doing the same work from this process, in the same run, with the same number of
 * operations in flight:
 * - `put`/`get`: one key per call: `PUT`/`GET /v1/state/{key}` against one better-sqlite3
 *   upsert/select (the sidecar's SQLite default) or one ioredis SET/GET (Redis:
 *   TRELLIS_TEST_REDIS_URL or the loopback default; skipped with a note when unreachable).
 * - `bulk put`/`bulk get`: BULK keys per call: `POST /v1/state/bulk-put` / `POST /v1/state/bulk`
 *   against the driver's own batched form of the same work (one SQLite transaction of BULK
 *   upserts / BULK selects; one ioredis pipeline of BULK SETs / one MGET). Rates are per key.
 * Target (issue 16): the state API answers >= 0.8x the raw driver's operations per second.
 *
 * What bounds the ratio: the raw driver has no HTTP hop, no JSON check, no revision or change
 * log. Against an embedded SQLite (a few microseconds a call) a loopback HTTP round trip (tens of
 * microseconds of CPU on each side) decides the single-key ratio, whatever the sidecar does;
 * against Redis both sides pay a network round trip, but the API pays two (app → sidecar →
 * Redis) and an HTTP parse and answer in between. Bulk calls spread the round trip over BULK keys.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { serviceUrl } from '../src/testing/services.js';
import { benchDir, freePort, ratio, runBench, startTrellis, table, verdict } from './_support/index.js';

const N = Number(process.env.STATE_BENCH_N ?? 5000);
const BULK = Number(process.env.STATE_BENCH_BULK ?? 100);
const WINDOW = 16;
const BULK_CALLS_FACTOR = 10;
const KEYS = 1000;
const value = JSON.stringify({ feature: 'checkout', enabled: true, note: 'x'.repeat(80) });
const root = join(import.meta.dirname, '..');

/**
 * Runs `one(i)` until N units (N × BULK_CALLS_FACTOR for bulk calls, so they too make hundreds
 * of calls) are done, WINDOW calls in flight; units per second.
 */
async function rate(one: (i: number) => Promise<unknown> | unknown, perCall = 1): Promise<number> {
  const units = perCall === 1 ? N : N * BULK_CALLS_FACTOR;
  const start = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < units) {
      const i = next;
      next += perCall;
      await one(i);
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  return next / ((performance.now() - start) / 1000);
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
  const proc = startTrellis(
    name,
    ['sidecar', '-c', file, '--', process.execPath, join(root, 'bench/_support/token-app.mjs')],
    // STATE_BENCH_CLI: another build's CLI, to compare before and after a change in one run.
    { cli: process.env.STATE_BENCH_CLI, env: { BENCH_TOKEN_FILE: tokenFile } },
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
  const call = async (method: 'GET' | 'PUT' | 'POST', path: string, body?: string) => {
    const res = await pool.request({ method, path, headers, ...(body === undefined ? {} : { body }) });
    await res.body.arrayBuffer();
    if (res.statusCode >= 300) throw new Error(`state API ${method} ${path} answered ${res.statusCode}`);
  };
  // Bodies made once (keys cycle through KEYS), so the client's cost is the HTTP call alone.
  const keys = (from: number) => Array.from({ length: BULK }, (_, j) => key(from + j));
  const bodies = new Map<string, string>();
  const once = (id: string, make: () => string) => {
    let body = bodies.get(id);
    if (body === undefined) {
      body = make();
      bodies.set(id, body);
    }
    return body;
  };
  const bulkPutBody = (from: number) =>
    once(`p${from % KEYS}`, () =>
      JSON.stringify({ items: keys(from).map((k) => ({ key: k, value: JSON.parse(value) })) }),
    );
  const bulkGetBody = (from: number) => once(`g${from % KEYS}`, () => JSON.stringify({ keys: keys(from) }));
  return {
    put: (i: number) => call('PUT', `/v1/state/${key(i)}`, value),
    get: (i: number) => call('GET', `/v1/state/${key(i)}`),
    bulkPut: (i: number) => call('POST', '/v1/state/bulk-put', bulkPutBody(i)),
    bulkGet: (i: number) => call('POST', '/v1/state/bulk', bulkGetBody(i)),
    close: () => pool.close(),
  };
}

const key = (i: number) => `bench/k${i % KEYS}`;
type Api = ReturnType<typeof stateApi>;
/** The driver side of each case: one operation, or the driver's own batch of BULK from `i`. */
interface Raw {
  put(i: number): unknown;
  get(i: number): unknown;
  bulkPut(i: number): unknown;
  bulkGet(i: number): unknown;
}
const CASES = [
  ['put', 'put', 1],
  ['get', 'get', 1],
  ['bulkPut', `bulk put ×${BULK}`, BULK],
  ['bulkGet', `bulk get ×${BULK}`, BULK],
] as const;

const rows: (string | number)[][] = [];
const verdicts: string[] = [];
async function measure(backend: string, raw: Raw, api: Api) {
  for (const [op, label, per] of CASES) {
    // A build without the bulk endpoints (STATE_BENCH_CLI of an older one) answers 404.
    const missing = await Promise.resolve(api[op](0)).then(
      () => false,
      (err: unknown) => String(err).includes('answered 404'),
    );
    if (missing) {
      rows.push([backend, label, 'n/a', '', '']);
      continue;
    }
    const r = await compare(
      () => rate((i) => raw[op](i), per),
      () => rate((i) => api[op](i), per),
    );
    rows.push([backend, label, r.sidecar, r.raw, ratio(r.sidecar, r.raw)]);
    verdicts.push(verdict(`${backend} ${label}: state API vs the raw driver`, r.sidecar / r.raw, 0.8));
  }
}

await runBench(async () => {
  console.log(
    `sidecar state API vs the raw driver: ${N} keys per case, ${WINDOW} calls in flight on both sides, bulk calls of ${BULK} keys (${N * BULK_CALLS_FACTOR} keys per bulk case)`,
  );

  // SQLite: the sidecar's default building block, against better-sqlite3 in this process.
  const db = new Sqlite(join(benchDir(), 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)');
  const upsert = db.prepare(
    'INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v',
  );
  const select = db.prepare('SELECT v FROM kv WHERE k = ?');
  const upsertMany = db.transaction((from: number) => {
    for (let j = 0; j < BULK; j++) upsert.run(key(from + j), value);
  });
  const sqliteApi = stateApi(await startSidecar('state-sqlite', `sqlite:${join(benchDir(), 'state.db')}`));
  await measure(
    'sqlite',
    {
      put: (i) => upsert.run(key(i), value),
      get: (i) => select.get(key(i)),
      bulkPut: (i) => upsertMany(i),
      bulkGet: (i) => {
        for (let j = 0; j < BULK; j++) select.get(key(i + j));
      },
    },
    sqliteApi,
  );
  await sqliteApi.close();
  db.close();

  const redisUrl = await serviceUrl('redis');
  if (redisUrl) {
    const redis = new Redis(redisUrl);
    const rk = (i: number) => `bench-raw:${key(i)}`;
    const redisApi = stateApi(
      await startSidecar('state-redis', `${redisUrl}?namespace=bench-state-${process.pid}`),
    );
    await measure(
      'redis',
      {
        put: (i) => redis.set(rk(i), value),
        get: (i) => redis.get(rk(i)),
        bulkPut: (i) => {
          const p = redis.pipeline();
          for (let j = 0; j < BULK; j++) p.set(rk(i + j), value);
          return p.exec();
        },
        bulkGet: (i) => redis.mget(Array.from({ length: BULK }, (_, j) => rk(i + j))),
      },
      redisApi,
    );
    await redisApi.close();
    const keys = await redis.keys('bench-raw:*');
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  } else {
    console.log('redis: skipped (not reachable)');
  }
  console.log(table(['backend', 'op', 'state API keys/s', 'raw driver keys/s', 'ratio'], rows));
  for (const v of verdicts) console.log(v);
  console.log(
    'note: one HTTP round trip per key cannot reach 0.8x of an in-process SQLite call, and pays two round trips against one for Redis; see docs/sidecar.md#performance',
  );
});
