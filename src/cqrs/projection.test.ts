import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openEventStore } from '../stores/events/index.js';
import { MemoryEventStore } from '../stores/events/memory.js';
import { ensureProjection } from './projection.js';
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

describe('projection names', () => {
  it('refuse names that are not plain identifiers', async () => {
    const store = await openEventStore(`sqlite:${join(dir, 'names.db')}`);
    await expect(ensureProjection(store, countingProjection('bad-name'))).rejects.toMatchObject({
      code: 'TRELLIS_E_PROJECTION_INVALID',
    });
    await store.close();
  });
});
