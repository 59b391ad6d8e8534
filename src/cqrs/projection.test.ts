import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openEventStore } from '../stores/events/index.js';
import { MemoryEventStore } from '../stores/events/memory.js';
import {
  ensureProjection,
  projectionStatus,
  projectionTable,
  runProjection,
  waitForProjection,
} from './projection.js';
import { sql } from './sql.js';
import { countingProjection } from './testing/fixtures.js';
import { projectionCases } from './testing/projection-cases.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-proj-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

// In one process SQLite gets one handle: a second connection would block the event loop
// waiting for the first one's write lock (better-sqlite3 is synchronous).
projectionCases('sqlite', {
  async open() {
    const unique = `u${++n}`;
    return {
      handles: [await openEventStore(`sqlite:${join(dir, `${unique}.db`)}`, { pollIntervalMs: 20 })],
      unique,
    };
  },
});

projectionCases('memory', {
  async open() {
    return { handles: [new MemoryEventStore()], unique: `m${++n}` };
  },
});

describe('projections of two event stores in one database', () => {
  it('keep their own checkpoints and read models, named after each events table', async () => {
    const file = `sqlite:${join(dir, 'shared.db')}`;
    const a = await openEventStore(file, { table: 'shop_a_events' });
    await a.append('s-1', [{ type: 'Incremented', data: { by: 1 } }]);
    await a.append('s-1', [{ type: 'Incremented', data: { by: 1 } }]);
    const projection = countingProjection('counts', 'stream_counts');
    const abort = new AbortController();
    const running = runProjection(a, projection, { signal: abort.signal, pollIntervalMs: 20 });
    await waitForProjection(a, 'counts', 2, { timeoutMs: 5000 });
    abort.abort();
    await running;
    await a.close();
    // A second store in the same file, with one event: its projection starts from 0, not from the
    // other store's checkpoint (2), and writes its own read model.
    const b = await openEventStore(file, { table: 'shop_b_events' });
    await b.append('s-9', [{ type: 'Incremented', data: { by: 5 } }]);
    const abortB = new AbortController();
    const runningB = runProjection(b, projection, { signal: abortB.signal, pollIntervalMs: 20 });
    await waitForProjection(b, 'counts', 1, { timeoutMs: 5000 });
    abortB.abort();
    await runningB;
    expect(projectionTable(b, 'stream_counts')).toBe('shop_b_events_stream_counts');
    const rows = await b.transaction((tx) =>
      sql(tx, `SELECT stream_id, total FROM ${projectionTable(b, 'stream_counts')}`),
    );
    expect(rows).toEqual([{ stream_id: 's-9', total: 5 }]);
    const [status] = await projectionStatus(b, [projection]);
    expect(status).toMatchObject({ position: 1, lag: 0 });
    await b.close();
  });

  it('keep the written names beside the default table', async () => {
    const store = await openEventStore(`sqlite:${join(dir, 'default.db')}`);
    expect(projectionTable(store, 'order_list')).toBe('order_list');
    await store.close();
  });
});

describe('projection names', () => {
  it('refuse names that are not plain identifiers', async () => {
    const store = await openEventStore(`sqlite:${join(dir, 'names.db')}`);
    await expect(ensureProjection(store, countingProjection('bad-name'))).rejects.toMatchObject({
      code: 'TRELLIS_E_PROJECTION_INVALID',
    });
    await store.close();
  });
});
