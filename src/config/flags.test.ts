import { describe, expect, it } from 'vitest';
import { evaluateFlag, flagSchema, rolloutBucket } from './flags.js';

const flag = (v: unknown) => flagSchema.parse(v);
const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

describe('feature flags', () => {
  it.each([1, 10, 25, 50, 90])('rolls out to %i%% of 10,000 keys within 2 points', (pct) => {
    const f = flag({ rollout: pct });
    const on = keys.filter((key) => evaluateFlag('new-checkout', f, { key })).length;
    expect(Math.abs((on / keys.length) * 100 - pct)).toBeLessThanOrEqual(2);
  });

  it('gives a key the same answer every time, and independent slices per flag', () => {
    const f = flag({ rollout: 50 });
    const a = keys.map((key) => evaluateFlag('a', f, { key }));
    expect(keys.map((key) => evaluateFlag('a', f, { key }))).toEqual(a);
    const b = keys.map((key) => evaluateFlag('b', f, { key }));
    const both = a.filter((x, i) => x && b[i]).length / keys.length;
    // Independent 50 % slices overlap about 25 %, not 50 %.
    expect(both).toBeGreaterThan(0.23);
    expect(both).toBeLessThan(0.27);
    // Growing a rollout only adds keys: nobody who had it loses it.
    const at20 = keys.filter((key) => evaluateFlag('a', flag({ rollout: 20 }), { key }));
    const at40 = new Set(keys.filter((key) => evaluateFlag('a', flag({ rollout: 40 }), { key })));
    expect(at20.every((k) => at40.has(k))).toBe(true);
    expect(rolloutBucket('a', 'x')).toBe(rolloutBucket('a', 'x'));
  });

  it('applies on/off, then targeting rules in order, then the rollout', () => {
    const f = flag({
      rules: [
        { when: { country: ['NL', 'BE'], plan: 'pro' }, serve: true },
        { when: { country: 'NL' }, serve: false },
        { when: { beta: true }, rollout: 0 },
      ],
      rollout: 100,
    });
    expect(evaluateFlag('f', f, { key: 'u', attributes: { country: 'BE', plan: 'pro' } })).toBe(true);
    expect(evaluateFlag('f', f, { key: 'u', attributes: { country: 'NL', plan: 'free' } })).toBe(false);
    expect(evaluateFlag('f', f, { key: 'u', attributes: { beta: true } })).toBe(false);
    expect(evaluateFlag('f', f, { key: 'u', attributes: { country: 'FR' } })).toBe(true);
    expect(evaluateFlag('f', flag({ enabled: false, rollout: 100 }), { key: 'u' })).toBe(false);
    expect(evaluateFlag('f', flag({}), {})).toBe(true);
    // A partial rollout needs a key to place the caller; without one the flag stays off.
    expect(evaluateFlag('f', flag({ rollout: 99 }), {})).toBe(false);
  });

  it('refuses unknown fields in a flag document', () => {
    expect(flagSchema.safeParse({ rolout: 5 }).success).toBe(false);
    expect(flagSchema.safeParse({ rollout: 101 }).success).toBe(false);
  });
});
