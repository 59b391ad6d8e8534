/**
 * The EventStore conformance suite: one function, called once by every backend's test file
 * (memory and sqlite in the unit tier, postgres in the integration tier). What a backend cannot
 * do is read from its feature list, never skipped quietly here.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isTrellisError } from '../../core/errors.js';
import type { RecordedEvent } from '../types.js';
import type { EventStore } from './types.js';

/**
 * Makes a fresh, empty place to store events and returns an opener for it. Each call of the
 * opener gives another handle (another connection where the backend has them) on the same data.
 */
export type EventStorePlace = () => Promise<() => Promise<EventStore>>;

async function collect<T>(iter: AsyncIterable<T>, until: (items: T[]) => boolean, timeoutMs = 15_000) {
  const items: T[] = [];
  const deadline = Date.now() + timeoutMs;
  for await (const item of iter) {
    items.push(item);
    if (until(items)) return items;
    if (Date.now() > deadline) throw new Error(`timed out after ${items.length} items`);
  }
  return items;
}

/** Retries an append with the freshly read version until it lands; returns the conflicts met. */
async function appendWithRetry(store: EventStore, stream: string, data: unknown): Promise<number> {
  for (let conflicts = 0; ; conflicts++) {
    const events = await store.readStream(stream);
    try {
      await store.append(stream, [{ type: 'Added', data }], { expectedVersion: events.length });
      return conflicts;
    } catch (err) {
      if (!isTrellisError(err, 'TRELLIS_E_EVENT_VERSION_CONFLICT')) throw err;
    }
  }
}

export function eventStoreConformance(name: string, place: EventStorePlace): void {
  describe(`EventStore conformance: ${name}`, () => {
    const opened: EventStore[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });
    async function handles(n: number): Promise<EventStore[]> {
      const open = await place();
      const list: EventStore[] = [];
      for (let i = 0; i < n; i++) list.push(await open());
      opened.push(...list);
      return list;
    }

    it('appends and reads a stream with versions from 1 and growing positions', async () => {
      const [store] = await handles(1);
      const a = await store!.append('order-1', [
        { type: 'Placed', data: { total: 5 }, metadata: { by: 'ann' } },
        { type: 'Paid', data: { amount: 5 } },
      ]);
      expect(a.nextVersion).toBe(2);
      const b = await store!.append('order-2', [{ type: 'Placed', data: { total: 1 } }]);
      expect(b.position).toBeGreaterThan(a.position);
      const events = await store!.readStream('order-1');
      expect(events.map((e) => [e.type, e.version, e.streamId])).toEqual([
        ['Placed', 1, 'order-1'],
        ['Paid', 2, 'order-1'],
      ]);
      expect(events[0]!.data).toEqual({ total: 5 });
      expect(events[0]!.metadata).toEqual({ by: 'ann' });
      expect(events[0]!.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(events[0]!.recordedAt).toBeInstanceOf(Date);
      expect(events[1]!.position).toBe(a.position);
      expect(await store!.readStream('order-1', { fromVersion: 2 })).toHaveLength(1);
      expect(await store!.readStream('order-1', { limit: 1 })).toHaveLength(1);
      expect(await store!.readStream('nobody')).toEqual([]);
      expect(await store!.headPosition()).toBe(b.position);
      expect((await store!.health()).ok).toBe(true);
    });

    it('enforces expected versions with a typed conflict carrying expected and actual', async () => {
      const [store] = await handles(1);
      await store!.append('s', [{ type: 'A', data: 1 }], { expectedVersion: 'no_stream' });
      await store!.append('s', [{ type: 'B', data: 2 }], { expectedVersion: 1 });
      await store!.append('s', [{ type: 'C', data: 3 }], { expectedVersion: 'exists' });
      await store!.append('s', [{ type: 'D', data: 4 }], { expectedVersion: 'any' });
      const cases: [string, 'no_stream' | 'exists' | number, number][] = [
        ['s', 'no_stream', 4],
        ['s', 2, 4],
        ['fresh', 'exists', 0],
        ['fresh', 3, 0],
      ];
      for (const [stream, expected, actual] of cases) {
        const err = await store!
          .append(stream, [{ type: 'X', data: 0 }], { expectedVersion: expected })
          .catch((e) => e);
        expect(isTrellisError(err, 'TRELLIS_E_EVENT_VERSION_CONFLICT')).toBe(true);
        expect(err.details).toMatchObject({ streamId: stream, actual });
        expect(err.details.expected).toBe(expected === 'no_stream' ? 0 : expected);
      }
      expect((await store!.readStream('s')).map((e) => e.type)).toEqual(['A', 'B', 'C', 'D']);
      expect(await store!.readStream('fresh')).toEqual([]);
    });

    it('reads all events after a position, in position order, with a limit', async () => {
      const [store] = await handles(1);
      for (let i = 0; i < 5; i++) await store!.append(`s${i % 2}`, [{ type: 'E', data: i }]);
      const all = await store!.readAll();
      expect(all.map((e) => e.data)).toEqual([0, 1, 2, 3, 4]);
      const after = await store!.readAll({ from: all[1]!.position, limit: 2 });
      expect(after.map((e) => e.data)).toEqual([2, 3]);
    });

    it('20 concurrent writers on one stream: exactly one wins each version, no gaps or duplicates', async () => {
      const hs = await handles(2);
      // One round: all 20 expect the empty stream, only one may win.
      const round = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          hs[i % 2]!.append('race', [{ type: 'Won', data: i }], { expectedVersion: 0 }),
        ),
      );
      expect(round.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of round) {
        if (r.status === 'rejected') expect(r.reason.code).toBe('TRELLIS_E_EVENT_VERSION_CONFLICT');
      }
      // Then each writer keeps retrying until its 5 events are in.
      await Promise.all(
        Array.from({ length: 20 }, async (_, w) => {
          for (let k = 0; k < 5; k++) await appendWithRetry(hs[w % 2]!, 'counter', `${w}:${k}`);
        }),
      );
      const events = await hs[0]!.readStream('counter');
      expect(events.map((e) => e.version)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(new Set(events.map((e) => e.data)).size).toBe(100);
    });

    it('a subscriber sees every event of many concurrent writers exactly once, in a stable order', async () => {
      const hs = await handles(2);
      const ac = new AbortController();
      const seen: RecordedEvent[] = [];
      const total = 8 * 25;
      const reading = collect(hs[1]!.subscribe({ signal: ac.signal }), (items) => {
        const last = items.at(-1)!;
        if (last.kind === 'event') seen.push(last.event);
        return seen.length >= total;
      });
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          for (let k = 0; k < 25; k++) {
            await hs[w % 2]!.append(`writer-${w}`, [{ type: 'E', data: `${w}:${k}` }], {
              expectedVersion: k,
            });
          }
        }),
      );
      await reading;
      ac.abort();
      expect(seen).toHaveLength(total);
      expect(new Set(seen.map((e) => e.data)).size).toBe(total);
      const positions = seen.map((e) => e.position);
      expect([...positions].sort((a, b) => a - b)).toEqual(positions);
      const reread = await hs[0]!.readAll();
      expect(reread.map((e) => e.id)).toEqual(seen.map((e) => e.id));
      expect((await hs[1]!.readAll()).map((e) => e.id)).toEqual(seen.map((e) => e.id));
    });

    it('subscribe catches up, says caught-up once, then delivers live events', async () => {
      const [store] = await handles(1);
      const first = await store!.append('a', [{ type: 'Old', data: 1 }]);
      await store!.append('a', [{ type: 'Old', data: 2 }]);
      const ac = new AbortController();
      const items = collect(store!.subscribe({ from: first.position, signal: ac.signal }), (xs) => {
        const last = xs.at(-1)!;
        if (last.kind === 'caught-up') void store!.append('b', [{ type: 'New', data: 3 }]);
        return last.kind === 'event' && last.event.type === 'New';
      });
      const got = await items;
      ac.abort();
      expect(got.map((i) => (i.kind === 'event' ? i.event.data : i.kind))).toEqual([2, 'caught-up', 3]);
      const caught = got[1] as { kind: 'caught-up'; position: number };
      expect(caught.position).toBe((await store!.readAll())[1]!.position);
    });

    it('inline handlers run in the append transaction; a throw leaves no trace', async () => {
      const [store] = await handles(1);
      expect(store!.features.supports.has('inlineProjections')).toBe(true);
      const saw: string[] = [];
      await store!.append('x', [{ type: 'One', data: 1 }], {
        inline: [async (events) => void saw.push(...events.map((e) => `${e.type}@${e.version}`))],
      });
      expect(saw).toEqual(['One@1']);
      const err = await store!
        .append('x', [{ type: 'Two', data: 2 }], {
          inline: [
            async () => {
              throw new Error('read model refused');
            },
          ],
        })
        .catch((e) => e);
      expect(err.message).toContain('read model refused');
      expect((await store!.readStream('x')).map((e) => e.type)).toEqual(['One']);
      // The store keeps working after the failed transaction.
      await store!.append('x', [{ type: 'Three', data: 3 }], { expectedVersion: 1 });
      expect(await store!.readStream('x')).toHaveLength(2);
    });

    it('rejects bad input with typed errors and refuses work after close', async () => {
      const [store] = await handles(1);
      await expect(store!.append('', [{ type: 'A', data: 1 }])).rejects.toMatchObject({
        code: 'TRELLIS_E_EVENT_INVALID',
      });
      await expect(store!.append('s', [{ type: '', data: 1 }])).rejects.toMatchObject({
        code: 'TRELLIS_E_EVENT_INVALID',
      });
      await expect(
        store!.append('s', [{ type: 'A', data: 1 }], { expectedVersion: -3 }),
      ).rejects.toMatchObject({
        code: 'TRELLIS_E_EVENT_INVALID',
      });
      await store!.close();
      await expect(store!.readAll()).rejects.toMatchObject({ code: 'TRELLIS_E_STORE_CLOSED' });
    });

    it('reads return copies: changing what a read returned never changes the store', async () => {
      const [store] = await handles(1);
      await store!.append('c', [{ type: 'A', data: { items: [1] }, metadata: { by: 'ann' } }]);
      const [first] = await store!.readStream('c');
      (first!.data as { items: number[] }).items.push(2);
      first!.metadata.by = 'mallory';
      first!.type = 'Changed';
      const [fromAll] = await store!.readAll();
      (fromAll!.data as { items: number[] }).items.push(3);
      const [again] = await store!.readStream('c');
      expect(again).toMatchObject({ type: 'A', data: { items: [1] }, metadata: { by: 'ann' } });
    });

    it('stores data as JSON on every backend: a Date reads back as its ISO string', async () => {
      const [store] = await handles(1);
      const when = new Date('2026-01-02T03:04:05.006Z');
      const data = { when, nested: { at: when }, gone: undefined, n: 1 };
      await store!.append('d', [{ type: 'A', data, metadata: { at: when } }]);
      // The caller's object is not the store's: changing it after the append changes nothing.
      data.n = 2;
      const [e] = await store!.readStream('d');
      expect(e!.data).toEqual({
        when: '2026-01-02T03:04:05.006Z',
        nested: { at: '2026-01-02T03:04:05.006Z' },
        n: 1,
      });
      expect(e!.metadata).toEqual({ at: '2026-01-02T03:04:05.006Z' });
      expect(e!.recordedAt).toBeInstanceOf(Date);
    });

    it('refuses data JSON cannot hold (BigInt, circular) with TRELLIS_E_EVENT_INVALID, storing nothing', async () => {
      const [store] = await handles(1);
      const circular: Record<string, unknown> = { a: 1 };
      circular.self = circular;
      for (const data of [{ big: 10n }, circular, 5n]) {
        await expect(store!.append('bad', [{ type: 'A', data }])).rejects.toMatchObject({
          code: 'TRELLIS_E_EVENT_INVALID',
          message: expect.stringContaining('cannot be stored as JSON'),
        });
      }
      await expect(
        store!.append('bad', [{ type: 'A', data: 1, metadata: { big: 1n } as Record<string, unknown> }]),
      ).rejects.toMatchObject({ code: 'TRELLIS_E_EVENT_INVALID' });
      // One bad event in a batch refuses the whole batch.
      await expect(
        store!.append('bad', [
          { type: 'A', data: 1 },
          { type: 'B', data: { big: 1n } },
        ]),
      ).rejects.toMatchObject({ code: 'TRELLIS_E_EVENT_INVALID' });
      expect(await store!.readStream('bad')).toEqual([]);
      expect(await store!.headPosition()).toBe(0);
    });

    it('answers the same for limits on every backend: 0 reads nothing, a negative limit is refused', async () => {
      const [store] = await handles(1);
      await store!.append(
        'l',
        [1, 2, 3].map((n) => ({ type: 'N', data: n })),
      );
      expect(await store!.readAll({ limit: 0 })).toEqual([]);
      expect((await store!.readAll({ from: 1 })).map((e) => e.data)).toEqual([2, 3]);
      expect((await store!.readStream('l', { fromVersion: 2, limit: 5 })).map((e) => e.data)).toEqual([2, 3]);
      for (const bad of [-1, 1.5, Number.NaN]) {
        await expect(store!.readAll({ limit: bad })).rejects.toMatchObject({
          code: 'TRELLIS_E_EVENT_INVALID',
        });
        await expect(store!.readStream('l', { limit: bad })).rejects.toMatchObject({
          code: 'TRELLIS_E_EVENT_INVALID',
        });
      }
      await expect(store!.readAll({ from: 0.5 })).rejects.toMatchObject({ code: 'TRELLIS_E_EVENT_INVALID' });
      expect(await store!.readAll()).toHaveLength(3);
    });
  });
}
