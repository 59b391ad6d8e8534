/**
 * Projection behaviour every SQL backend must show: run by projection.test.ts (SQLite) and
 * projection.int.test.ts (PostgreSQL). Not a public API.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { EventStore } from '../../stores/events/types.js';
import { handleCommand } from '../decider.js';
import {
  ensureProjection,
  inlineProjection,
  type Projection,
  projectionStatus,
  projectionTable,
  rebuildProjection,
  runProjection,
  waitForProjection,
} from '../projection.js';
import { sql } from '../sql.js';
import { counterDecider, countingProjection } from './fixtures.js';

type Counts = Map<string, { events: number; total: number }>;

/** What the counting read model must hold: a full replay of the store, in memory. */
async function replay(store: EventStore): Promise<Counts> {
  const out: Counts = new Map();
  for (const e of await store.readAll()) {
    const c = out.get(e.streamId) ?? { events: 0, total: 0 };
    c.events++;
    c.total += Number((e.data as { by?: number })?.by ?? 0);
    out.set(e.streamId, c);
  }
  return out;
}

async function readModel(store: EventStore, table: string): Promise<Counts> {
  const rows = await store.transaction((tx) =>
    sql<{ stream_id: string; events: number; total: number }>(
      tx,
      `SELECT * FROM ${projectionTable(store, table)} ORDER BY stream_id`,
    ),
  );
  return new Map(rows.map((r) => [r.stream_id, { events: Number(r.events), total: Number(r.total) }]));
}

async function until(check: () => Promise<boolean>, what: string, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface ProjectionPlace {
  /** A fresh, empty store; `n` handles on the same data (SQLite in one process: pass 1). */
  open(): Promise<{ handles: EventStore[]; unique: string }>;
}

export function projectionCases(name: string, place: ProjectionPlace): void {
  describe(`projections on ${name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });
    async function open() {
      const { handles, unique } = await place.open();
      cleanups.push(async () => {
        for (const h of handles) await h.close();
      });
      const table = `counts_${unique}`;
      return { handles, table, projection: countingProjection(`p_${unique}`, table) };
    }
    function run(store: EventStore, p: Projection) {
      const ac = new AbortController();
      const done = runProjection(store, p, { signal: ac.signal, pollIntervalMs: 50 });
      cleanups.push(async () => {
        ac.abort();
        await done;
      });
      return done;
    }

    it('an async projection fed by concurrent writers, some committing late, equals a full replay', async () => {
      const { handles, table, projection } = await open();
      const writer = handles[0]!;
      const reader = handles.at(-1)!;
      projection.batchSize = 37;
      void run(reader, projection);
      // Late committers: appends whose transaction stays open until we let go.
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const slow = [0, 1, 2].map((i) =>
        writer.append(`slow-${i}`, [{ type: 'Incremented', data: { by: 100 } }], { inline: [() => gate] }),
      );
      let started = 0;
      const fast = Array.from({ length: 10 }, async (_, w) => {
        started++;
        for (let k = 0; k < 20; k++) {
          await handleCommand(
            handles[w % handles.length]!,
            `fast-${w % 4}`,
            { type: 'Increment', by: 1 },
            counterDecider,
            {
              maxRetries: 1000,
            },
          );
        }
      });
      // Let go of the late committers only once every fast writer is running behind them.
      await until(async () => started === 10, 'the fast writers to start');
      release();
      await Promise.all([...slow, ...fast]);
      const head = await writer.headPosition();
      await waitForProjection(reader, projection.name, head, { timeoutMs: 20_000 });
      expect(await readModel(reader, table)).toEqual(await replay(reader));
      const [status] = await projectionStatus(reader, [projection]);
      expect(status).toMatchObject({ position: head, lag: 0, generation: 1 });
    });

    it('an inline projection commits with the append, and a failing read model undoes it', async () => {
      const { handles, table, projection } = await open();
      const store = handles[0]!;
      await ensureProjection(store, projection);
      const inline = [inlineProjection(projection)];
      const r = await handleCommand(store, 'a', { type: 'Increment', by: 2 }, counterDecider, { inline });
      expect(await readModel(store, table)).toEqual(new Map([['a', { events: 1, total: 2 }]]));
      expect((await projectionStatus(store, [projection]))[0]!.position).toBe(r.position);
      const failing = inlineProjection({
        ...projection,
        apply: async () => {
          throw new Error('read model down');
        },
      });
      await expect(
        handleCommand(store, 'a', { type: 'Increment', by: 2 }, counterDecider, { inline: [failing] }),
      ).rejects.toThrow('read model down');
      expect(await store.readStream('a')).toHaveLength(1);
      expect((await projectionStatus(store, [projection]))[0]!.position).toBe(r.position);
    });

    it('a rebuild swaps in a fresh copy while queries never see an empty or half-built answer', async () => {
      const { handles, table, projection } = await open();
      const store = handles[0]!;
      projection.batchSize = 100;
      for (let i = 0; i < 20; i++) {
        await store.append(
          `s-${i % 5}`,
          Array.from({ length: 50 }, () => ({ type: 'Incremented', data: { by: 1 } })),
        );
      }
      const runner = new AbortController();
      const running = runProjection(store, projection, { signal: runner.signal, pollIntervalMs: 50 });
      await waitForProjection(store, projection.name, await store.headPosition(), { timeoutMs: 20_000 });
      runner.abort();
      await running;
      const expected = await replay(store);
      let stop = false;
      let answers = 0;
      const querying = (async () => {
        while (!stop) {
          expect(await readModel(handles.at(-1)!, table)).toEqual(expected);
          answers++;
          await new Promise((r) => setImmediate(r));
        }
      })();
      const progress: number[] = [];
      const status = await rebuildProjection(store, projection, { onProgress: (p) => progress.push(p.done) });
      stop = true;
      await querying;
      expect(answers).toBeGreaterThan(1);
      expect(status).toMatchObject({ generation: 2, lag: 0 });
      expect(progress.at(-1)).toBe(1000);
      expect(await readModel(store, table)).toEqual(expected);
      // The old copy is gone; the new one is what the view reads.
      const [{ n }] = (await store.transaction((tx) =>
        sql<{ n: number }>(tx, `SELECT count(*) AS n FROM ${projectionTable(store, table)}__g2`),
      )) as [{ n: number }];
      expect(Number(n)).toBe(5);
      await expect(
        store.transaction((tx) => sql(tx, `SELECT * FROM ${projectionTable(store, table)}__g1`)),
      ).rejects.toThrow();
    });

    it('a rebuild that stopped part-way resumes where it stopped', async () => {
      const { handles, table, projection } = await open();
      const store = handles[0]!;
      projection.batchSize = 50;
      for (let i = 0; i < 10; i++) {
        await store.append(
          `s-${i % 3}`,
          Array.from({ length: 30 }, () => ({ type: 'Incremented', data: { by: 2 } })),
        );
      }
      await ensureProjection(store, projection);
      const ac = new AbortController();
      const first = await rebuildProjection(store, projection, {
        signal: ac.signal,
        onProgress: (p) => {
          if (p.done >= 100) ac.abort();
        },
      }).catch((e) => e);
      expect(first.code).toBe('TRELLIS_E_PROJECTION_REBUILD_ABORTED');
      const [mid] = await projectionStatus(store, [projection]);
      expect(mid!.generation).toBe(1);
      expect(mid!.rebuild).toEqual({ generation: 2, position: expect.any(Number) });
      expect(mid!.rebuild!.position).toBeGreaterThanOrEqual(100);
      // Queries still answer from the old (here: empty, never-run) copy meanwhile.
      expect((await readModel(store, table)).size).toBe(0);
      const progress: { done: number; total: number }[] = [];
      await rebuildProjection(store, projection, { onProgress: (p) => progress.push(p) });
      expect(progress[0]).toMatchObject({ done: 0, total: 300 - mid!.rebuild!.position });
      expect(await readModel(store, table)).toEqual(await replay(store));
    });

    it('waitForProjection refuses a position that is not a whole number at once', async () => {
      const { handles, projection } = await open();
      const store = handles[0]!;
      for (const bad of [undefined, Number.NaN, -1, 1.5, '3']) {
        const started = Date.now();
        await expect(
          waitForProjection(store, projection.name, bad as unknown as number, { timeoutMs: 5000 }),
        ).rejects.toMatchObject({ code: 'TRELLIS_E_PROJECTION_POSITION_INVALID', status: 400 });
        expect(Date.now() - started).toBeLessThan(1000);
      }
    });

    it('waitForProjection times out with a typed error when the projection lags', async () => {
      const { handles, projection } = await open();
      const store = handles[0]!;
      await ensureProjection(store, projection);
      const r = await store.append('x', [{ type: 'Incremented', data: { by: 1 } }]);
      await expect(
        waitForProjection(store, projection.name, r.position, { timeoutMs: 50 }),
      ).rejects.toMatchObject({
        code: 'TRELLIS_E_PROJECTION_TIMEOUT',
      });
      void run(store, projection);
      await until(
        async () =>
          (await waitForProjection(store, projection.name, r.position).catch(() => 0)) >= r.position,
        'catch-up',
      );
    });
  });
}
