import { describe, expect, it } from 'vitest';
import { silentLogger } from '../core/logger.js';
import { openKeyValueStore } from '../stores/kv/index.js';
import { ComparisonCache } from './comparison-cache.js';
import { compareAnswers } from './diff.js';
import { cookieValue, stickyKeyFunction } from './key.js';
import { LiveState } from './live.js';
import { MismatchLog, valueAt } from './mismatches.js';
import { answerOf, CopyDeadlines, compareRaw, sameBody } from './shadow.js';
import { ComparisonQueue, ShadowQueue } from './shadow-queue.js';
import { MigrationState } from './state.js';

const answer = (body: unknown, status = 200, headers: Record<string, string> = {}) => ({
  status,
  headers,
  body,
});

describe('shadow queue', () => {
  it('runs at most `concurrency`, queues at most `queue`, drops and counts the rest', async () => {
    const q = new ShadowQueue(2, 1);
    const a = q.reserve()!;
    const b = q.reserve()!;
    const c = q.reserve()!;
    expect(q.reserve()).toBeUndefined();
    expect(q.dropped).toBe(1);
    expect(q.load).toEqual({ running: 2, waiting: 1 });
    let started = false;
    void c.start.then(() => {
      started = true;
    });
    await Promise.resolve();
    expect(started).toBe(false);
    a.done();
    a.done(); // twice is once
    await c.start;
    expect(started).toBe(true);
    expect(q.load).toEqual({ running: 2, waiting: 0 });
    b.done();
    c.done();
    expect(q.load).toEqual({ running: 0, waiting: 0 });
  });

  it('frees a waiting place given up before it started', () => {
    const q = new ShadowQueue(1, 1);
    const a = q.reserve()!;
    const b = q.reserve()!;
    b.done();
    expect(q.load).toEqual({ running: 1, waiting: 0 });
    a.done();
    expect(q.load).toEqual({ running: 0, waiting: 0 });
  });
});

describe('sticky keys', () => {
  const ctx = (headers: Record<string, string>, jwt?: Record<string, unknown>) =>
    ({ req: { headers }, clientIp: '10.0.0.1', state: jwt ? { jwt } : {} }) as never;

  it('reads a header, a cookie, a JWT claim, and falls back to the client IP', () => {
    expect(stickyKeyFunction('ip')(ctx({}))).toBe('ip:10.0.0.1');
    expect(stickyKeyFunction({ header: 'X-User' })(ctx({ 'x-user': 'ada' }))).toBe('h:ada');
    expect(stickyKeyFunction({ header: 'x-user' })(ctx({}))).toBe('ip:10.0.0.1');
    expect(stickyKeyFunction({ cookie: 'sid' })(ctx({ cookie: 'a=1; sid=s42; b=2' }))).toBe('c:s42');
    expect(stickyKeyFunction({ jwtClaim: 'sub' })(ctx({}, { sub: 'u7' }))).toBe('jwt:u7');
    expect(stickyKeyFunction({ jwtClaim: 'sub' })(ctx({}))).toBe('ip:10.0.0.1');
  });

  it('parses cookies as RFC 6265 writes them', () => {
    expect(cookieValue('sid="quoted"', 'sid')).toBe('quoted');
    expect(cookieValue('xsid=1; sid=2', 'sid')).toBe('2');
    expect(cookieValue('sid', 'sid')).toBeUndefined();
    expect(cookieValue(undefined, 'sid')).toBeUndefined();
  });
});

describe('mismatch log', () => {
  it('counts every comparison, keeps the last N with redacted bodies, tallies fields', () => {
    const log = new MismatchLog({ keep: 2, sample: 1, redact: ['user.email'], maxBodySize: 1000 });
    const req = (i: number) => ({
      requestId: `r${i}`,
      method: 'GET',
      path: '/x',
      primary: 'legacy' as const,
    });
    for (let i = 0; i < 5; i++) {
      const a = answer({ price: i, user: { email: 'a@x', id: 1 } }, 200, {
        authorization: 'Bearer s',
        'content-type': 'application/json',
      });
      const b = answer({ price: i + 1, user: { email: 'b@x', id: 1 } });
      log.record(req(i), compareAnswers(a, b), a, b);
    }
    const same = answer({ v: 1 });
    log.record(req(9), compareAnswers(same, same), same, same);
    log.failure();
    const r = log.report();
    expect(r).toMatchObject({ compared: 6, mismatched: 5, failed: 1 });
    expect(r.rate).toBeCloseTo(5 / 6);
    expect(r.recent.map((m) => m.requestId)).toEqual(['r3', 'r4']);
    expect(r.recent[1]!.answers!.primary.headers).toEqual({ 'content-type': 'application/json' });
    expect(r.recent[1]!.answers!.primary.body).toEqual({ price: 4, user: { email: '[redacted]', id: 1 } });
    const byPath = Object.fromEntries(r.fields.map((f) => [f.path, f]));
    expect(byPath.price).toMatchObject({ count: 5, example: { primary: 4, candidate: 5, requestId: 'r4' } });
    expect(byPath['user.email']!.example.primary).toBe('[redacted]');
  });

  it('cuts long bodies and keeps only the sampled share with bodies', () => {
    const log = new MismatchLog({ keep: 10, sample: 0.5, redact: [], maxBodySize: 10, random: () => 0.7 });
    const a = answer({ text: 'x'.repeat(100) });
    const b = answer({ text: 'y' });
    log.record({ requestId: 'r', method: 'GET', path: '/', primary: 'legacy' }, compareAnswers(a, b), a, b);
    expect(log.report().recent[0]!.answers).toBeUndefined();
    const kept = new MismatchLog({ keep: 10, sample: 1, redact: [], maxBodySize: 10 });
    kept.record({ requestId: 'r', method: 'GET', path: '/', primary: 'legacy' }, compareAnswers(a, b), a, b);
    expect(kept.report().recent[0]!.answers!.primary).toMatchObject({ truncated: true, body: '{"text":"x' });
  });

  it('finds values by path', () => {
    expect(valueAt({ items: [{ p: 1 }, { p: 2 }] }, 'items[1].p')).toBe(2);
    expect(valueAt({ a: 1 }, 'b.c')).toBeUndefined();
    expect(valueAt('text', '(body)')).toBe('text');
  });
});

describe('live state', () => {
  it('starts from the file, follows the store, and a guarded step back is written once', async () => {
    const store = await openKeyValueStore('memory:');
    const state = new MigrationState(store);
    await state.set('orders', { mode: 'canary', weight: 20, by: 'ada' });
    const live = new LiveState(
      'orders',
      state,
      { mode: 'legacy', weight: 0, reverseShadow: false },
      silentLogger(),
    );
    await live.ready;
    expect(live.current).toMatchObject({ mode: 'canary', weight: 20, source: 'store' });
    const other = new LiveState(
      'other',
      state,
      { mode: 'shadow', weight: 0, reverseShadow: false },
      silentLogger(),
    );
    await other.ready;
    expect(other.current).toMatchObject({ mode: 'shadow', source: 'file' });
    await state.set('orders', { mode: 'modern', by: 'ada' });
    const deadline = Date.now() + 5000;
    while (live.current.mode !== 'modern' && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(live.current.mode).toBe('modern');
    // Two instances judging the same window: only the first step back is written.
    const first = await state.set('orders', {
      mode: 'canary',
      weight: 10,
      by: 'guard',
      reason: 'p99',
      onlyIf: 'modern',
    });
    const second = await state.set('orders', {
      mode: 'canary',
      weight: 10,
      by: 'guard',
      reason: 'p99',
      onlyIf: 'modern',
    });
    expect(first?.mode).toBe('canary');
    expect(second).toBeUndefined();
    expect((await state.history('orders')).map((h) => h.by)).toEqual(['ada', 'ada', 'guard']);
    live.close();
    other.close();
    await store.close();
  });
});

describe('shadow copies: shared deadlines, raw answers, batched comparisons', () => {
  it('expires copies in start order on one timer, and forgets copies that ended', async () => {
    const list = new CopyDeadlines(30);
    const first = list.start();
    const second = list.start();
    const third = list.start();
    const fired: string[] = [];
    first.once('abort', () => fired.push('first'));
    const l2 = () => fired.push('second');
    second.once('abort', l2);
    second.off('abort', l2);
    third.once('abort', () => fired.push('third'));
    second.done();
    expect(list.size).toBe(2);
    await new Promise((r) => setTimeout(r, 60));
    expect(fired).toEqual(['first', 'third']);
    expect(first.aborted).toBe(true);
    expect((first.reason as Error).name).toBe('TimeoutError');
    expect(second.aborted).toBe(false);
    expect(list.size).toBe(0);
    // A copy started after the timer went idle gets a timer again.
    const late = list.start();
    await new Promise((r) => setTimeout(r, 60));
    expect(late.aborted).toBe(true);
  });

  it('compares byte-equal bodies without parsing, and parses different ones', () => {
    const raw = (body: string, headers: Record<string, string> = {}) => ({
      status: 200,
      headers: { 'content-type': 'application/json', ...headers },
      raw: Buffer.from(body),
    });
    const same = compareRaw(raw('{"a":1}'), raw('{"a":1}'), { rules: { compareHeaders: ['content-type'] } });
    expect(same.difference.equal).toBe(true);
    expect(sameBody(raw('{"a":1}'), raw('{"a":1}'))).toBe(true);
    // Same bytes but another compared header: not equal, and the answers can still be kept.
    const header = compareRaw(raw('{"a":1}'), raw('{"a":1}', { 'content-type': 'text/plain' }), {
      rules: { compareHeaders: ['content-type'] },
    });
    expect(header.difference.equal).toBe(false);
    expect(header.answers()[0].body).toEqual({ a: 1 });
    // Different bytes, same JSON: equal after parsing.
    expect(compareRaw(raw('{"a":1,"b":2}'), raw('{"b":2, "a":1}'), {}).difference.equal).toBe(true);
    const diff = compareRaw(raw('{"a":1}'), raw('{"a":2}'), {});
    expect(diff.difference.changed).toEqual(['a']);
    // Too large on both sides: the bodies count as equal, as before.
    const big = { status: 200, headers: {}, raw: undefined };
    expect(sameBody(big, { ...big })).toBe(true);
    expect(sameBody(big, raw('{}'))).toBe(false);
    expect(answerOf(big).body).toMatch(/maxResponseSize/);
  });

  it('diffs a pair of bodies once (hash, then diff), with each request’s status, rules and noise', () => {
    const raw = (body: string, status = 200) => ({
      status,
      headers: { 'content-type': 'application/json' },
      raw: Buffer.from(body),
    });
    const cache = new ComparisonCache(2, 64);
    const first = compareRaw(raw('{"a":1,"at":1}'), raw('{"a":2,"at":2}'), {}, cache);
    expect(first.difference.changed).toEqual(['a', 'at']);
    expect([cache.hits, cache.misses]).toEqual([0, 1]);
    // The same bytes again: not parsed again, but this request's status and noise apply.
    const again = compareRaw(
      raw('{"a":1,"at":1}'),
      raw('{"a":2,"at":2}', 500),
      { noise: new Set(['at']) },
      cache,
    );
    expect([cache.hits, cache.misses]).toEqual([1, 1]);
    expect(again.difference.changed).toEqual(['a']);
    expect(again.difference.status).toEqual([200, 500]);
    expect(again.answers()[1]).toMatchObject({ status: 500, body: { a: 2, at: 2 } });
    // A byte more on one side is another pair.
    expect(compareRaw(raw('{"a":1,"at":1}'), raw('{"a":2,"at":2} '), {}, cache).difference.changed).toEqual([
      'a',
      'at',
    ]);
    expect([cache.hits, cache.misses]).toEqual([1, 2]);
    // Bounded: the least recently used pair leaves first; bodies over maxBodyBytes are never kept.
    compareRaw(raw('{"b":1}'), raw('{"b":2}'), {}, cache);
    expect(cache.size).toBe(2);
    compareRaw(raw('{"a":1,"at":1}'), raw('{"a":2,"at":2}'), {}, cache);
    expect(cache.misses).toBe(4);
    const big = `{"x":"${'y'.repeat(100)}"}`;
    expect(compareRaw(raw(big), raw('{"x":1}'), {}, cache).difference.changed).toEqual(['x']);
    compareRaw(raw(big), raw('{"x":1}'), {}, cache);
    expect(cache.misses).toBe(4);
    expect(cache.size).toBe(2);
  });

  it('runs comparisons in batches off the current turn, drops and counts past its bound', async () => {
    const errors: unknown[] = [];
    let drops = 0;
    const q = new ComparisonQueue(
      3,
      2,
      (e) => errors.push(e),
      () => drops++,
    );
    const ran: number[] = [];
    for (let i = 0; i < 4; i++) q.push(() => ran.push(i));
    q.push(() => {});
    expect(ran).toEqual([]);
    expect(q.dropped).toBe(2);
    expect(drops).toBe(2);
    await new Promise((r) => setImmediate(r));
    expect(ran).toEqual([0, 1]);
    await new Promise((r) => setImmediate(r));
    expect(ran).toEqual([0, 1, 2]);
    q.push(() => {
      throw new Error('boom');
    });
    await new Promise((r) => setImmediate(r));
    expect(errors).toHaveLength(1);
    expect(q.waiting).toBe(0);
  });
});
