/**
 * KeyValueStore put and get per second on each backend, next to the raw driver doing the same
 * work directly in the same run: better-sqlite3 upsert/select, pg upsert/select on a Pool of the
 * same size, ioredis SET/GET, etcd3 put/range. Target: Trellis >= 0.8x of raw.
 *
 * Puts run twice: WINDOW callers in flight (where Trellis's group commit batches them) and one
 * caller awaiting each put (N/5 puts; nothing to batch).
 *
 * `npm run bench -- stores kv` (KV_BENCH_N=5000 operations per case by default, WINDOW in flight;
 * every case also stops after 20 s; KV_BENCH_ONLY=sqlite,redis picks backends). Uses the TRELLIS_TEST_* URLs or the loopback defaults;
 * backends that cannot be reached are skipped with a note. Cleans up what it creates.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openKeyValueStore } from '../../src/stores/kv/index.js';
import type { KeyValueStore } from '../../src/stores/types.js';
import { serviceUrl } from '../../src/testing/services.js';
import { holdBenchLock } from '../_support/lock.js';

const N = Number(process.env.KV_BENCH_N ?? 5000);
const WINDOW = 16; // operations in flight at once, the same for both sides
const KEYS = 1000;
const TIME_LIMIT_MS = 20_000;
const value = JSON.stringify({ feature: 'checkout', enabled: true, note: 'x'.repeat(80) });

interface Row {
  backend: string;
  op: string;
  trellis: number;
  raw: number;
}

/** Runs `one(i)` up to `count` times with `window` in flight; returns operations per second. */
async function rate(one: (i: number) => unknown, window = WINDOW, count = N): Promise<number> {
  const start = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < count && performance.now() - start < TIME_LIMIT_MS) await one(next++);
  };
  await Promise.all(Array.from({ length: window }, worker));
  return next / ((performance.now() - start) / 1000);
}

/** Raw first, then Trellis twice, then raw again; keeps each side's better run. */
async function compare(
  backend: string,
  op: string,
  raw: () => Promise<number>,
  trellis: () => Promise<number>,
) {
  const r1 = await raw();
  const t1 = await trellis();
  const t2 = await trellis();
  const r2 = await raw();
  return { backend, op, raw: Math.max(r1, r2), trellis: Math.max(t1, t2) };
}

async function pair(
  backend: string,
  store: KeyValueStore,
  prefix: string,
  raw: { put: (k: string) => unknown; get: (k: string) => unknown },
): Promise<Row[]> {
  const key = (i: number) => `${prefix}k${i % KEYS}`;
  const put = await compare(
    backend,
    'put',
    () => rate((i) => raw.put(key(i))),
    () => rate((i) => store.put(key(i), value)),
  );
  // One caller awaiting each put: Trellis's group commit has nothing to batch here, so this row
  // shows the per-put cost of the change log and the ordered revision alone.
  const seq = Math.max(1, Math.floor(N / 5));
  const putOne = await compare(
    backend,
    'put, 1 in flight',
    () => rate((i) => raw.put(key(i)), 1, seq),
    () => rate((i) => store.put(key(i), value), 1, seq),
  );
  const get = await compare(
    backend,
    'get',
    () => rate((i) => raw.get(key(i))),
    () => rate((i) => store.get(key(i))),
  );
  return [put, putOne, get];
}

async function sqliteRows(): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-kv-'));
  const store = await openKeyValueStore(`sqlite:${join(dir, 'trellis.db')}`);
  // The raw side gets the same pragmas Trellis uses, so only the store's own work differs.
  const db = new Sqlite(join(dir, 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
  const upsert = db.prepare(
    'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
  );
  const select = db.prepare('SELECT value FROM kv WHERE key = ?');
  try {
    return await pair('sqlite', store, 'b/', {
      put: (k) => upsert.run(k, value),
      get: (k) => select.get(k),
    });
  } finally {
    await store.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function postgresRows(url: string): Promise<Row[]> {
  const table = `trellis_kv_bench_${randomBytes(3).toString('hex')}`;
  const store = await openKeyValueStore(`${url}${url.includes('?') ? '&' : '?'}table=${table}`);
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  const raw = `${table}_raw`;
  await pool.query(`CREATE TABLE ${raw} (key text COLLATE "C" PRIMARY KEY, value text NOT NULL)`);
  try {
    return await pair('postgres', store, 'b/', {
      put: (k) =>
        pool.query(
          `INSERT INTO ${raw} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
          [k, value],
        ),
      get: (k) => pool.query(`SELECT value FROM ${raw} WHERE key = $1`, [k]),
    });
  } finally {
    await store.close();
    await pool.query(
      `DROP TABLE IF EXISTS ${raw}, ${table}, ${table}_log, ${table}_meta; DROP FUNCTION IF EXISTS ${table}_write`,
    );
    await pool.end();
  }
}

async function redisRows(url: string): Promise<Row[]> {
  const ns = `trellis-bench:${randomBytes(3).toString('hex')}`;
  const store = await openKeyValueStore(`${url}?namespace=${ns}`);
  const redis = new Redis(url);
  try {
    return await pair('redis', store, 'b/', {
      put: (k) => redis.set(`${ns}:raw:${k}`, value),
      get: (k) => redis.get(`${ns}:raw:${k}`),
    });
  } finally {
    await store.close();
    const keys = [...(await redis.keys(`{${ns}}*`)), ...(await redis.keys(`${ns}:raw:*`))];
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
    redis.disconnect();
  }
}

async function etcdRows(url: string): Promise<Row[]> {
  const ns = `trellis-bench/${randomBytes(3).toString('hex')}/`;
  const store = await openKeyValueStore(`${url}?namespace=${ns}`);
  const client = new Etcd3({ hosts: url.replace(/^etcd:/, 'http:') });
  try {
    return await pair('etcd', store, 'b/', {
      put: (k) => client.kv.put({ key: Buffer.from(`${ns}raw/${k}`), value: Buffer.from(value) }),
      get: (k) => client.kv.range({ key: Buffer.from(`${ns}raw/${k}`) }),
    });
  } finally {
    await store.close();
    await client.delete().prefix(ns);
    client.close();
  }
}

/** Prints the table for every reachable backend. */
export async function run(): Promise<void> {
  holdBenchLock();
  const rows: Row[] = [];
  const notes: string[] = [];
  const only = process.env.KV_BENCH_ONLY?.split(',');
  if (!only || only.includes('sqlite')) rows.push(...(await sqliteRows()));
  const cases: [string, (url: string) => Promise<Row[]>][] = [
    ['postgres', postgresRows],
    ['redis', redisRows],
    ['etcd', etcdRows],
  ];
  for (const [name, fn] of cases) {
    if (only && !only.includes(name)) continue;
    const url = await serviceUrl(name as 'postgres');
    if (url) rows.push(...(await fn(url)));
    else notes.push(`${name}: not reachable, skipped`);
  }
  console.log(
    `KeyValueStore, ${N} operations per case, ${WINDOW} in flight, ${KEYS} keys, ${value.length}-byte values\n`,
  );
  console.log('| backend | op | Trellis ops/s | raw driver ops/s | ratio |');
  console.log('| --- | --- | ---: | ---: | ---: |');
  for (const r of rows) {
    console.log(
      `| ${r.backend} | ${r.op} | ${Math.round(r.trellis)} | ${Math.round(r.raw)} | ${(r.trellis / r.raw).toFixed(2)}x |`,
    );
  }
  for (const n of notes) console.log(`\n${n}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
