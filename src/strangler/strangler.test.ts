import { describe, expect, it } from 'vitest';
import { compareAnswers, compileIgnore } from './diff.js';
import { type ExperimentResult, experiment } from './experiment.js';
import { NoiseModel } from './noise.js';
import { bucketOf, toModern } from './sticky.js';

const answer = (body: unknown, status = 200, headers: Record<string, string> = {}) => ({
  status,
  headers,
  body,
});

describe('sticky canary decisions', () => {
  const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

  it('sends about the weight to the modern side, the same keys every time', () => {
    const first = keys.filter((k) => toModern('catalog', k, 10));
    expect(first.length / keys.length).toBeGreaterThan(0.09);
    expect(first.length / keys.length).toBeLessThan(0.11);
    expect(keys.filter((k) => toModern('catalog', k, 10))).toEqual(first);
  });

  it('only adds keys as the weight grows, and differs per route', () => {
    const at10 = new Set(keys.filter((k) => toModern('catalog', k, 10)));
    const at50 = new Set(keys.filter((k) => toModern('catalog', k, 50)));
    for (const k of at10) expect(at50.has(k)).toBe(true);
    expect(keys.filter((k) => toModern('reviews', k, 10))).not.toEqual([...at10]);
    expect(keys.every((k) => !toModern('r', k, 0) && toModern('r', k, 100))).toBe(true);
    expect(bucketOf('r', 'k')).toBe(bucketOf('r', 'k'));
  });
});

describe('comparing answers', () => {
  it('lists changed paths, reordered arrays, status and chosen headers apart', () => {
    const d = compareAnswers(
      answer({ id: 1, price: 10, tags: ['a', 'b'], items: [{ n: 1 }, { n: 2 }] }, 200, {
        'content-type': 'application/json',
      }),
      answer({ id: 1, price: 11, tags: ['b', 'a'], items: [{ n: 1 }, { n: 3 }], extra: true }, 201, {
        'content-type': 'text/json',
      }),
      { rules: { compareHeaders: ['content-type'] } },
    );
    expect(d.equal).toBe(false);
    expect(d.status).toEqual([200, 201]);
    expect(d.headers['content-type']).toEqual(['application/json', 'text/json']);
    expect(d.changed.sort()).toEqual(['extra', 'items[1].n', 'price']);
    expect(d.reordered).toEqual(['tags']);
  });

  it('ignores paths by pattern and learnt noise', () => {
    const ignore = compileIgnore({ paths: ['meta', 'items[*].at'] });
    const a = answer({ meta: { t: 1 }, items: [{ at: 1, v: 1 }], requestId: 'x1' });
    const b = answer({ meta: { t: 2 }, items: [{ at: 2, v: 1 }], requestId: 'x2' });
    expect(compareAnswers(a, b, { ignore }).changed).toEqual(['requestId']);
    const noise = new NoiseModel();
    noise.learn(answer({ requestId: 'q1', v: 1 }), answer({ requestId: 'q2', v: 1 }));
    expect(compareAnswers(a, b, { ignore, noise: noise.paths }).equal).toBe(true);
    expect(noise.summary()).toEqual({ samples: 1, paths: { requestId: 1 } });
  });
});

describe('experiment (in-process strangler)', () => {
  const collect = () => {
    const results: ExperimentResult<unknown>[] = [];
    return { results, report: (r: ExperimentResult<unknown>) => results.push(r) };
  };
  const settle = () => new Promise((r) => setTimeout(r, 30));

  it('returns the control and reports a matching candidate', async () => {
    const { results, report } = collect();
    expect(
      await experiment({ name: 'sum', control: () => ({ n: 3 }), candidate: () => ({ n: 3 }), report }),
    ).toEqual({ n: 3 });
    await settle();
    expect(results[0]!.matched).toBe(true);
  });

  it('never lets a candidate that throws, differs or hangs reach the caller', async () => {
    const { results, report } = collect();
    expect(
      await experiment({
        name: 'a',
        control: () => 1,
        candidate: () => {
          throw new Error('boom');
        },
        report,
      }),
    ).toBe(1);
    expect(
      await experiment({ name: 'b', control: () => ({ v: 1 }), candidate: () => ({ v: 2 }), report }),
    ).toEqual({ v: 1 });
    const started = performance.now();
    const hung = experiment({
      name: 'c',
      control: async () => 'fast',
      candidate: () => new Promise(() => {}),
      timeoutMs: 50,
      report,
    });
    expect(await hung).toBe('fast');
    expect(performance.now() - started).toBeLessThan(40);
    await new Promise((r) => setTimeout(r, 100));
    const byName = Object.fromEntries(results.map((r) => [r.name, r]));
    expect(byName.a!.matched).toBe(false);
    expect(byName.b!.difference?.changed).toEqual(['v']);
    expect(byName.c!.candidate.timedOut).toBe(true);
  });

  it('rethrows the control error and samples the candidate', async () => {
    let ran = 0;
    await expect(
      experiment({
        name: 'e',
        control: () => {
          throw new Error('control');
        },
        candidate: () => ran++,
      }),
    ).rejects.toThrow('control');
    for (let i = 0; i < 10; i++)
      await experiment({ name: 's', control: () => 1, candidate: () => ran++, sample: 0, random: () => 0.5 });
    await settle();
    expect(ran).toBe(1);
  });
});

describe('migration state in a KeyValueStore', () => {
  it('sets, validates, keeps history, and pushes changes to followers', async () => {
    const { openKeyValueStore } = await import('../stores/kv/index.js');
    const { MigrationState } = await import('./state.js');
    const store = await openKeyValueStore('memory:');
    const state = new MigrationState(store);
    const ac = new AbortController();
    const seen: string[] = [];
    const following = state.follow((route, s) => seen.push(`${route}=${s.mode}:${s.weight}`), ac.signal);
    await state.set('catalog', { mode: 'shadow', by: 'ada' });
    await state.set('catalog', { mode: 'canary', weight: 10, by: 'ada', reason: 'shadow clean for a day' });
    await expect(state.set('catalog', { mode: 'canary', weight: 150, by: 'bob' })).rejects.toThrow(
      'not a percentage',
    );
    await expect(state.set('catalog', { mode: 'warp' as never, by: 'bob' })).rejects.toThrow('unknown mode');
    await expect(state.set('catalog', { mode: 'canary', weight: 0, by: 'bob' })).rejects.toThrow(
      'use shadow for 0',
    );
    expect((await state.get('catalog'))?.weight).toBe(10);
    const history = await state.history('catalog');
    expect(history.map((h) => `${h.mode}:${h.weight}:${h.by}`)).toEqual(['shadow:0:ada', 'canary:10:ada']);
    const deadline = Date.now() + 5000;
    while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual(['catalog=shadow:0', 'catalog=canary:10']);
    ac.abort();
    await following;
    await store.close();
  });
});

describe('guard rails', () => {
  it('steps back on errors or latency only after the minimum sample', async () => {
    const { OutcomeWindow, judge, stepBackFrom } = await import('./guard.js');
    let now = 1_000_000;
    const w = new OutcomeWindow(10_000, () => now);
    const t = { maxErrorRate: 0.05, maxP99Ms: 250, minSamples: 20 };
    for (let i = 0; i < 10; i++) w.record(true, 5);
    expect(judge(w.stats(), t).action).toBe('hold');
    for (let i = 0; i < 90; i++) w.record(false, 5);
    expect(judge(w.stats(), t)).toMatchObject({
      action: 'stepBack',
      why: expect.stringContaining('error rate 10.0 %'),
    });
    now += 11_000; // the window forgets
    for (let i = 0; i < 100; i++) w.record(false, i < 98 ? 5 : 900);
    expect(judge(w.stats(), t)).toMatchObject({ action: 'stepBack', why: expect.stringContaining('p99') });
    now += 11_000;
    for (let i = 0; i < 100; i++) w.record(false, 4);
    expect(judge(w.stats(), t).action).toBe('ok');
    expect([stepBackFrom('canary'), stepBackFrom('modern'), stepBackFrom('shadow')]).toEqual([
      'shadow',
      'canary',
      undefined,
    ]);
  });
});
