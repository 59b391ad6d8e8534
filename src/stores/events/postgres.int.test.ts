import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import type { RecordedEvent } from '../types.js';
import { eventStoreConformance } from './conformance.js';
import { openEventStore } from './index.js';

const url = await serviceUrl('postgres');
const tables: string[] = [];
const tableName = () => {
  const t = `ev_${randomBytes(5).toString('hex')}`;
  tables.push(t);
  return t;
};

afterAll(async () => {
  if (!url) return;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  for (const t of tables)
    await c.query(`DROP TABLE IF EXISTS ${t}; DROP FUNCTION IF EXISTS ${t}_append, ${t}_append_batch`);
  await c.end();
});

async function until(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!url)('postgres event store', () => {
  eventStoreConformance('postgres', async () => {
    const table = tableName();
    return () => openEventStore(url!, { table, pollIntervalMs: 200 });
  });

  it('never lets a reader skip an event from a transaction that commits late', async () => {
    const table = tableName();
    const store = await openEventStore(url!, { table });
    await store.append('early', [{ type: 'E', data: 0 }]);
    const ac = new AbortController();
    const seen: RecordedEvent[] = [];
    const reading = (async () => {
      for await (const item of store.subscribe({ signal: ac.signal })) {
        if (item.kind === 'event') seen.push(item.event);
        if (seen.length === 7) return;
      }
    })();
    // A slow writer: its transaction has appended (taken a position) but not committed yet.
    const slow = new pg.Client({ connectionString: url, application_name: `slow_${table}` });
    await slow.connect();
    await slow.query('BEGIN');
    await slow.query(
      `SELECT * FROM ${table}_append('slow', -1, ARRAY[gen_random_uuid()], ARRAY['Slow'], ARRAY['1'::jsonb], ARRAY['{}'::jsonb])`,
    );
    // Five fast writers start while it is open, and a reader keeps reading readAll.
    const fast = Array.from({ length: 5 }, (_, i) => store.append(`fast-${i}`, [{ type: 'Fast', data: i }]));
    await until(async () => {
      const rows = await store.transaction((tx) =>
        tx.sql<{ n: string }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
          [`%${table}_append%`],
        ),
      );
      return Number(rows[0]!.n) >= 1;
    }, 'fast writers to queue behind the open transaction');
    const midway = await store.readAll();
    expect(midway.map((e) => e.streamId)).toEqual(['early']);
    await slow.query('COMMIT');
    await slow.end();
    await Promise.all(fast);
    await reading;
    ac.abort();
    const all = await store.readAll();
    expect(all.map((e) => e.id)).toEqual(seen.map((e) => e.id));
    expect(seen.map((e) => e.streamId).slice(0, 2)).toEqual(['early', 'slow']);
    expect(new Set(seen.map((e) => e.streamId)).size).toBe(7);
    await store.close();
  });

  it('gives TRELLIS_E_STORE_UNAVAILABLE when its connection is killed mid-operation, then recovers', async () => {
    const table = tableName();
    const app = `kill_${table}`;
    const u = new URL(url!);
    u.searchParams.set('application_name', app);
    const store = await openEventStore(u.toString(), { table });
    await store.append('s', [{ type: 'A', data: 1 }]);
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const sleeping = store.transaction((tx) => tx.sql('SELECT pg_sleep(30)')).catch((e: unknown) => e);
    await until(async () => {
      const { rows } = await admin.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_sleep%' AND state = 'active'",
        [app],
      );
      return rows[0].n === 1;
    }, 'the sleeping query');
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
      app,
    ]);
    expect(await sleeping).toMatchObject({ code: 'TRELLIS_E_STORE_UNAVAILABLE' });
    // Every pooled connection was killed too; the store must reconnect without a restart.
    await until(async () => {
      try {
        await store.append('s', [{ type: 'B', data: 2 }]);
        return true;
      } catch (err) {
        expect((err as { code: string }).code).toBe('TRELLIS_E_STORE_UNAVAILABLE');
        return false;
      }
    }, 'the store to work again');
    expect((await store.readStream('s')).map((e) => e.type)).toEqual(['A', 'B']);
    await admin.end();
    await store.close();
  });

  it('names the fix when the server cannot be reached', async () => {
    await expect(openEventStore('postgres://postgres@127.0.0.1:1/test')).rejects.toMatchObject({
      code: 'TRELLIS_E_STORE_UNAVAILABLE',
      message: expect.stringContaining('is PostgreSQL running there?'),
    });
  });
});
