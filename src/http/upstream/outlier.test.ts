import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { OutlierDetector } from './outlier.js';
import { serviceSchema } from './schema.js';
import { nodes } from './testing.js';

/** A fake wall clock the test moves by hand: ejection times are minutes long. */
function fakeClock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

function setup(weights: Record<string, number>, outlier: Record<string, unknown> = {}) {
  const clock = fakeClock();
  const ups = nodes(weights, clock.now);
  const def = serviceSchema.parse({ upstreams: ['http://x.test'], outlier }).outlier;
  const ejected: string[] = [];
  const detector = new OutlierDetector(ups, def, {
    clock: clock.now,
    logger: silentLogger(),
    onEject: (u) => ejected.push(u.origin.hostname.replace('.test', '')),
  });
  return { clock, ups, detector, ejected };
}

describe('OutlierDetector', () => {
  it('ejects after consecutive5xx failed attempts, and not before', () => {
    const { ups, detector } = setup({ a: 1, b: 1 }, { consecutive5xx: 3 });
    const [a] = ups;
    detector.record(a!, 'http5xx');
    detector.record(a!, 'http5xx');
    expect(a!.ejected).toBe(false);
    detector.record(a!, 'http5xx');
    expect(a!.ejected).toBe(true);
  });

  it('a cancelled attempt (the caller gave up) neither counts as a failure nor resets the count', () => {
    const { ups, detector } = setup({ a: 1, b: 1 }, { consecutive5xx: 3 });
    const [a] = ups;
    for (let i = 0; i < 10; i++) detector.record(a!, 'cancelled');
    expect(a!.ejected).toBe(false);
    expect(a!.consecutive5xx).toBe(0);
    detector.record(a!, 'http5xx');
    detector.record(a!, 'http5xx');
    detector.record(a!, 'cancelled');
    detector.record(a!, 'http5xx');
    expect(a!.ejected).toBe(true);
  });

  it('a success in between resets the count', () => {
    const { ups, detector } = setup({ a: 1, b: 1 }, { consecutive5xx: 3 });
    const [a] = ups;
    for (const outcome of ['http5xx', 'http5xx', 'success', 'http5xx', 'http5xx'] as const)
      detector.record(a!, outcome);
    expect(a!.ejected).toBe(false);
  });

  it('ejects sooner on connect failures', () => {
    const { ups, detector } = setup({ a: 1, b: 1 }, { consecutive5xx: 5, consecutiveConnectFailures: 2 });
    const [a] = ups;
    detector.record(a!, 'connectFailure');
    detector.record(a!, 'reset');
    expect(a!.ejected).toBe(true);
  });

  it('doubles the ejection time on each ejection up to maxEjection, and re-admits when it runs out', () => {
    const { ups, detector, clock } = setup(
      { a: 1, b: 1 },
      { consecutive5xx: 1, baseEjection: '10s', maxEjection: '35s' },
    );
    const [a] = ups;
    const lengths: number[] = [];
    for (let i = 0; i < 4; i++) {
      detector.record(a!, 'http5xx');
      expect(a!.ejected).toBe(true);
      lengths.push(a!.ejectedUntil - clock.now());
      clock.advance(lengths.at(-1)! - 1);
      expect(a!.ejected).toBe(true); // still out one millisecond before the end
      clock.advance(1);
      expect(a!.ejected).toBe(false); // re-admitted, no timer needed
      expect(a!.available).toBe(true);
    }
    expect(lengths).toEqual([10_000, 20_000, 35_000, 35_000]);
    expect(a!.ejections).toBe(4);
  });

  it('forgets past ejections after a healthy period', () => {
    const { ups, detector, clock } = setup(
      { a: 1, b: 1 },
      { consecutive5xx: 1, baseEjection: '10s', maxEjection: '5m' },
    );
    const [a] = ups;
    detector.record(a!, 'http5xx'); // 10s
    clock.advance(10_000);
    detector.record(a!, 'http5xx'); // 20s: failed again at once
    expect(a!.ejectedUntil - clock.now()).toBe(20_000);
    clock.advance(20_000 + 25_000); // then behaved for two base periods
    detector.record(a!, 'http5xx');
    expect(a!.ejectedUntil - clock.now()).toBe(10_000);
  });

  it('never ejects more than maxEjectedPercent, and never the last upstream', () => {
    const { ups, detector } = setup({ a: 1, b: 1, c: 1, d: 1 }, { consecutive5xx: 1, maxEjectedPercent: 50 });
    for (const u of ups) detector.record(u, 'http5xx');
    expect(ups.map((u) => u.ejected)).toEqual([true, true, false, false]);

    const two = setup({ a: 1, b: 1 }, { consecutive5xx: 1, maxEjectedPercent: 100 });
    for (const u of two.ups) two.detector.record(u, 'http5xx');
    expect(two.ups.filter((u) => u.ejected)).toHaveLength(1);

    const single = setup({ a: 1 }, { consecutive5xx: 1, maxEjectedPercent: 100 });
    single.detector.record(single.ups[0]!, 'http5xx');
    expect(single.ups[0]!.ejected).toBe(false);
  });

  it('ejects at least one of several even when the percentage rounds down to zero', () => {
    const { detector } = setup({ a: 1, b: 1, c: 1 }, { maxEjectedPercent: 10 });
    expect(detector.maxEjected()).toBe(1);
    expect(setup({ a: 1, b: 1, c: 1 }, { maxEjectedPercent: 0 }).detector.maxEjected()).toBe(0);
  });

  it('ejects a waiting upstream once another is re-admitted', () => {
    const { ups, detector, clock, ejected } = setup(
      { a: 1, b: 1 },
      { consecutive5xx: 1, baseEjection: '1s', maxEjection: '1s' },
    );
    const [a, b] = ups;
    detector.record(a!, 'http5xx');
    detector.record(b!, 'http5xx'); // refused: a is out and one is the limit
    expect([a!.ejected, b!.ejected]).toEqual([true, false]);
    clock.advance(1_000);
    detector.record(b!, 'http5xx');
    expect([a!.ejected, b!.ejected]).toEqual([false, true]);
    expect(ejected).toEqual(['a', 'b']);
  });

  it('can be switched off', () => {
    const { ups, detector } = setup({ a: 1, b: 1 }, { consecutive5xx: 0, consecutiveConnectFailures: 0 });
    for (let i = 0; i < 100; i++) detector.record(ups[0]!, 'connectFailure');
    expect(ups[0]!.ejected).toBe(false);
  });
});
