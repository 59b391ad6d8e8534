import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openEventStore } from '../stores/events/index.js';
import { MemoryEventStore } from '../stores/events/memory.js';
import { aggregateStream, handleCommand } from './decider.js';
import { given } from './given.js';
import { memorySnapshots, sqlSnapshots } from './snapshots.js';
import { counterDecider } from './testing/fixtures.js';
import type { Upcaster } from './types.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-cqrs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const inc = (by: number) => ({ type: 'Incremented' as const, data: { by } });

describe('deciders given/when/then', () => {
  it('decides from the given history', async () => {
    await given(counterDecider, [inc(2)])
      .when({ type: 'Increment', by: 3 })
      .then([inc(3)]);
    await given(counterDecider)
      .when({ type: 'Close' })
      .then([{ type: 'Closed', data: {} }]);
  });

  it('refuses with a typed error', async () => {
    await given(counterDecider, [{ type: 'Closed', data: {} }])
      .when({ type: 'Increment', by: 1 })
      .thenThrows('TRELLIS_E_COMMAND_REJECTED');
    await given(counterDecider).when({ type: 'Increment', by: 0 }).thenThrows();
  });

  it('fails loudly when the events differ or nothing is thrown', async () => {
    await expect(
      given(counterDecider)
        .when({ type: 'Increment', by: 3 })
        .then([inc(4)]),
    ).rejects.toThrow(/expected events/);
    await expect(given(counterDecider).when({ type: 'Increment', by: 3 }).thenThrows()).rejects.toThrow(
      /to be refused/,
    );
  });
});

describe.each([
  ['memory', async () => new MemoryEventStore()],
  ['sqlite', async () => openEventStore(`sqlite:${join(dir, `d-${Math.random()}.db`)}`)],
])('handleCommand on %s', (_name, open) => {
  it('20 concurrent senders on the same aggregates lose no update', async () => {
    const store = await open();
    const senders = Array.from({ length: 20 }, async (_, s) => {
      for (let k = 0; k < 10; k++) {
        await handleCommand(store, `counter-${k % 2}`, { type: 'Increment', by: 1 }, counterDecider, {
          maxRetries: 1000,
          metadata: { sender: s },
        });
      }
    });
    await Promise.all(senders);
    for (const id of ['counter-0', 'counter-1']) {
      const { state, version } = await aggregateStream(store, id, counterDecider);
      expect(state.value).toBe(100);
      expect(version).toBe(100);
    }
    await store.close();
  });

  it('gives up after maxRetries with the typed conflict', async () => {
    const store = await open();
    // A decider that lets a rival write between our read and our append, every time.
    const rival = {
      ...counterDecider,
      async decide(
        c: Parameters<typeof counterDecider.decide>[0],
        s: Parameters<typeof counterDecider.decide>[1],
      ) {
        await store.append('c', [inc(1)]);
        return counterDecider.decide(c, s);
      },
    };
    const err = await handleCommand(store, 'c', { type: 'Increment', by: 1 }, rival, { maxRetries: 2 }).catch(
      (e) => e,
    );
    expect(err.code).toBe('TRELLIS_E_EVENT_VERSION_CONFLICT');
    expect((await store.readStream('c')).length).toBe(3);
    await store.close();
  });

  it('returns the state, version and position of the append; a rejected command appends nothing', async () => {
    const store = await open();
    const r = await handleCommand(store, 'c', { type: 'Increment', by: 5 }, counterDecider);
    expect(r).toMatchObject({ state: { value: 5 }, nextVersion: 1, retries: 0 });
    expect(r.position).toBe(await store.headPosition());
    await handleCommand(store, 'c', { type: 'Close' }, counterDecider);
    await expect(
      handleCommand(store, 'c', { type: 'Increment', by: 1 }, counterDecider),
    ).rejects.toMatchObject({
      code: 'TRELLIS_E_COMMAND_REJECTED',
      status: 422,
    });
    expect(await store.readStream('c')).toHaveLength(2);
    await store.close();
  });
});

describe('snapshots and upcasters', () => {
  it('takes a snapshot every N events and reads only the events after it', async () => {
    const store = await openEventStore(`sqlite:${join(dir, 'snap.db')}`);
    const snapshots = sqlSnapshots(store);
    for (let i = 0; i < 7; i++) {
      await handleCommand(store, 's', { type: 'Increment', by: 1 }, counterDecider, {
        snapshots: { store: snapshots, every: 3 },
      });
    }
    expect(await snapshots.load('s')).toMatchObject({ version: 6, deciderVersion: 1, state: { value: 6 } });
    // Prove the snapshot is used: a snapshot state that history would never produce shows through.
    await snapshots.save('s', { version: 7, deciderVersion: 1, state: { value: 1000, closed: false } });
    const used = await aggregateStream(store, 's', counterDecider, {
      snapshots: { store: snapshots, every: 3 },
    });
    expect(used.state.value).toBe(1000);
    // A new decider version ignores it and folds the whole stream.
    const v2 = { ...counterDecider, version: 2 };
    const fresh = await aggregateStream(store, 's', v2, { snapshots: { store: snapshots, every: 3 } });
    expect(fresh.state.value).toBe(7);
    await store.close();
  });

  it('memory snapshots keep copies, not references', async () => {
    const snaps = memorySnapshots();
    const state = { value: 1 };
    await snaps.save('x', { state, version: 1, deciderVersion: 1 });
    state.value = 2;
    expect((await snaps.load('x'))?.state).toEqual({ value: 1 });
  });

  it('upcasts old event versions on read, never rewriting them', async () => {
    const store = new MemoryEventStore();
    await store.append('u', [{ type: 'Added', data: { amount: '3' } }]); // v1: a string, old name
    await store.append('u', [{ type: 'Incremented', data: { by: 2 }, metadata: { schemaVersion: 2 } }]);
    const upcasters: Upcaster[] = [
      {
        type: 'Added',
        fromVersion: 1,
        toType: 'Incremented',
        up: (d) => ({ by: Number((d as { amount: string }).amount) }),
      },
    ];
    const { state } = await aggregateStream(store, 'u', counterDecider, { upcasters });
    expect(state.value).toBe(5);
    expect((await store.readStream('u'))[0]!.type).toBe('Added');
  });
});
