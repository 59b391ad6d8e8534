import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openEventStore } from '../stores/events/index.js';
import { serviceUrl } from '../testing/services.js';
import { aggregateStream, handleCommand } from './decider.js';
import { projectionTable, runProjection, waitForProjection } from './projection.js';
import { sqlSnapshots } from './snapshots.js';
import { sql } from './sql.js';
import { counterDecider, countingProjection } from './testing/fixtures.js';
import { projectionCases } from './testing/projection-cases.js';

const url = await serviceUrl('postgres');
const uniques: string[] = [];

afterAll(async () => {
  if (!url) return;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  for (const u of uniques) {
    // Beside table ev_<u>, the read model and checkpoints carry its name (see projectionTable).
    await c.query(`DROP VIEW IF EXISTS ev_${u}_counts_${u}, counts_${u}`);
    await c.query(
      `DROP TABLE IF EXISTS ev_${u}_counts_${u}__g1, ev_${u}_counts_${u}__g2, counts_${u}__g1, counts_${u}__g2, ev_${u}_projections, ev_${u}`,
    );
    await c.query(`DROP FUNCTION IF EXISTS ev_${u}_append, ev_${u}_append_batch`);
    await c.query(`DROP TABLE IF EXISTS snap_${u}`);
    await c.query(`DELETE FROM trellis_projections WHERE name = $1`, [`p_${u}`]).catch(() => {});
  }
  await c.end();
});

function unique(): string {
  const u = randomBytes(5).toString('hex');
  uniques.push(u);
  return u;
}

describe.skipIf(!url)('CQRS on PostgreSQL', () => {
  projectionCases('postgres', {
    async open() {
      const u = unique();
      const handles = [];
      for (let i = 0; i < 3; i++)
        handles.push(await openEventStore(url!, { table: `ev_${u}`, pollIntervalMs: 100 }));
      return { handles, unique: u };
    },
  });

  it('20 concurrent command senders on the same aggregates lose no update', async () => {
    const u = unique();
    const stores = [
      await openEventStore(url!, { table: `ev_${u}` }),
      await openEventStore(url!, { table: `ev_${u}` }),
    ];
    await Promise.all(
      Array.from({ length: 20 }, async (_, s) => {
        for (let k = 0; k < 10; k++) {
          await handleCommand(
            stores[s % 2]!,
            `counter-${k % 2}`,
            { type: 'Increment', by: 1 },
            counterDecider,
            {
              maxRetries: 1000,
            },
          );
        }
      }),
    );
    for (const id of ['counter-0', 'counter-1']) {
      const { state, version } = await aggregateStream(stores[0]!, id, counterDecider);
      expect([state.value, version]).toEqual([100, 100]);
    }
    for (const s of stores) await s.close();
  });

  it('keeps version-tagged snapshots beside the events', async () => {
    const u = unique();
    const store = await openEventStore(url!, { table: `ev_${u}` });
    const snapshots = { store: sqlSnapshots(store, `snap_${u}`), every: 4 };
    for (let i = 0; i < 9; i++) {
      await handleCommand(store, 'c', { type: 'Increment', by: 1 }, counterDecider, { snapshots });
    }
    expect(await snapshots.store.load('c')).toMatchObject({
      version: 8,
      deciderVersion: 1,
      state: { value: 8 },
    });
    const folded = await aggregateStream(store, 'c', counterDecider, { snapshots });
    expect([folded.state.value, folded.version, folded.snapshotVersion]).toEqual([9, 9, 8]);
    await store.close();
  });

  it('an async projection rides out its connections being killed and catches up', async () => {
    const u = unique();
    const app = `proj_${u}`;
    const url2 = new URL(url!);
    url2.searchParams.set('application_name', app);
    const writer = await openEventStore(url!, { table: `ev_${u}` });
    const reader = await openEventStore(url2.toString(), { table: `ev_${u}`, pollIntervalMs: 100 });
    const projection = countingProjection(`p_${u}`, `counts_${u}`);
    const ac = new AbortController();
    const running = runProjection(reader, projection, { signal: ac.signal, pollIntervalMs: 50 });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 20; i++)
          await writer.append(`s-${i % 3}`, [{ type: 'Incremented', data: { by: 1 } }]);
        await admin.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
          [app],
        );
      }
      const head = await writer.headPosition();
      await waitForProjection(writer, projection.name, head, { timeoutMs: 30_000 });
      const rows = await writer.transaction((tx) =>
        sql<{ events: number }>(
          tx,
          `SELECT events FROM ${projectionTable(writer, `counts_${u}`)} ORDER BY stream_id`,
        ),
      );
      // 60 events over three streams: 21, 21, 18; exactly once each despite the killed connections.
      expect(rows.map((r) => Number(r.events))).toEqual([21, 21, 18]);
    } finally {
      ac.abort();
      await running.catch(() => {});
      await admin.end();
      await reader.close();
      await writer.close();
    }
  });
});
