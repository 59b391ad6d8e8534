import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventStoreConformance } from './conformance.js';
import { openEventStore } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-events-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

eventStoreConformance('sqlite', async () => {
  const path = join(dir, `events-${++n}.db`);
  return () => openEventStore(`sqlite:${path}`, { pollIntervalMs: 20 });
});

describe('sqlite event store', () => {
  it('keeps events across reopen (durable)', async () => {
    const url = `sqlite:${join(dir, 'durable', 'events.db')}`;
    const a = await openEventStore(url);
    await a.append('s', [{ type: 'A', data: { n: 1 } }]);
    await a.close();
    const b = await openEventStore(url);
    expect((await b.readStream('s')).map((e) => e.data)).toEqual([{ n: 1 }]);
    expect(b.features.supports.has('durable')).toBe(true);
    await b.close();
  });

  it('takes table and pollMs from the URL', async () => {
    const path = join(dir, 'opts.db');
    const a = await openEventStore(`sqlite:${path}?table=orders_events&pollMs=15`);
    await a.append('s', [{ type: 'A', data: 1 }]);
    await a.close();
    const b = await openEventStore(`sqlite:${path}?table=other_events`);
    expect(await b.readAll()).toEqual([]);
    await b.close();
    const c = await openEventStore(`sqlite:${path}?table=orders_events`);
    expect(await c.readAll()).toHaveLength(1);
    await c.close();
    await expect(openEventStore(`sqlite:${path}?pollMs=soon`)).rejects.toMatchObject({
      code: 'TRELLIS_E_STORE_URL_INVALID',
    });
  });

  it('says which path failed when the file cannot be created', async () => {
    writeFileSync(join(dir, 'a-file'), 'not a folder');
    await expect(openEventStore(`sqlite:${join(dir, 'a-file', 'events.db')}`)).rejects.toMatchObject({
      code: 'TRELLIS_E_STORE_UNAVAILABLE',
    });
  });
});
