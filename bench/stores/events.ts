/**
 * EventStore on PostgreSQL next to Emmett's PostgreSQL event store, same database, same run:
 * appends/s (single events and batches of 10, 8 concurrent writers on their own streams) and
 * readAll catch-up events/s. `npm run bench -- stores events`. Bounded in count and time.
 * Also exports the bench-database helpers bench/cqrs.ts uses.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { openEventStore } from '../../src/stores/events/index.js';

const BASE = process.env.TRELLIS_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A throwaway database for one benchmark run (Emmett's tables have fixed names). */
export async function withBenchDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const name = `trellis_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: BASE });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(BASE);
  u.pathname = `/${name}`;
  try {
    return await fn(u.toString());
  } finally {
    // Emmett's pools close their idle connections lazily; killing them would crash this process
    // from inside its pool, so wait (bounded) for them to leave before dropping the database.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const { rows } = await admin.query(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1',
        [name],
      );
      if (rows[0].n === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end();
  }
}

/** Runs `op(i)` with `concurrency` workers until `count` ops or `maxMs`; returns ops/s. */
export async function measure(
  count: number,
  concurrency: number,
  maxMs: number,
  op: (i: number, worker: number) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  let done = 0;
  const started = performance.now();
  const deadline = started + maxMs;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (next < count && performance.now() < deadline) {
        await op(next++, w);
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

export const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(9);
export const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

export async function run(): Promise<void> {
  const { getPostgreSQLEventStore } = await import('@event-driven-io/emmett-postgresql');
  await withBenchDatabase(async (url) => {
    const trellis = await openEventStore(url);
    const emmett = getPostgreSQLEventStore(url);
    const run = randomUUID().slice(0, 8);
    const data = { orderId: 'o-1', amount: 42, currency: 'EUR' };
    const ten = Array.from({ length: 10 }, () => ({ type: 'ItemAdded', data }));
    const C = 8;
    // Warm both up (pools, prepared plans, Emmett's schema creation).
    await measure(200, C, 10_000, (_i, w) => trellis.append(`warm-${run}-${w}`, [{ type: 'Warm', data }]));
    await measure(200, C, 10_000, (_i, w) =>
      emmett.appendToStream(`warm-${run}-${w}`, [{ type: 'Warm', data }]),
    );

    const rows: [string, number, number][] = [];
    const N = 4000;
    const tSingle = await measure(N, C, 15_000, (i, w) =>
      trellis.append(`t1-${run}-${w}-${i % 50}`, [{ type: 'ItemAdded', data }]),
    );
    const eSingle = await measure(N, C, 15_000, (i, w) =>
      emmett.appendToStream(`e1-${run}-${w}-${i % 50}`, [{ type: 'ItemAdded', data }]),
    );
    rows.push(['append 1 event (8 writers), appends/s', tSingle, eSingle]);
    const tBatch = await measure(N / 4, C, 15_000, (i, w) =>
      trellis.append(`t10-${run}-${w}-${i % 50}`, ten),
    );
    const eBatch = await measure(N / 4, C, 15_000, (i, w) =>
      emmett.appendToStream(`e10-${run}-${w}-${i % 50}`, ten),
    );
    rows.push(['append 10 events (8 writers), appends/s', tBatch, eBatch]);
    const tSeq = await measure(1000, 1, 10_000, (i) =>
      trellis.append(`ts-${run}-${i % 20}`, [{ type: 'ItemAdded', data }]),
    );
    const eSeq = await measure(1000, 1, 10_000, (i) =>
      emmett.appendToStream(`es-${run}-${i % 20}`, [{ type: 'ItemAdded', data }]),
    );
    rows.push(['append 1 event (1 writer), appends/s', tSeq, eSeq]);

    // readAll catch-up: every event from position 0 in pages of 1000.
    const started = performance.now();
    let read = 0;
    for (let from = 0; ; ) {
      const page = await trellis.readAll({ from, limit: 1000 });
      if (page.length === 0) break;
      read += page.length;
      from = page.at(-1)!.position;
    }
    const readRate = read / ((performance.now() - started) / 1000);

    console.log(`| operation | Trellis | Emmett | Trellis/Emmett |`);
    console.log(`| --- | ---: | ---: | ---: |`);
    for (const [name, t, e] of rows) console.log(`| ${name} | ${fmt(t)} | ${fmt(e)} | ${ratio(t, e)} |`);
    console.log(`| readAll catch-up (${read} events, pages of 1000), events/s | ${fmt(readRate)} | - | - |`);
    await trellis.close();
    await emmett.close();
  });
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
