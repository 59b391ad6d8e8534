import { describe, expect, it } from 'vitest';
import { counts, names, nodes } from '../testing.js';
import { ConsistentHashBalancer, hash32 } from './consistent-hash.js';

const all = () => true;
const keys = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);

describe('ConsistentHashBalancer (ring with virtual nodes)', () => {
  it('sends the same key to the same upstream every time', () => {
    const balancer = new ConsistentHashBalancer(nodes({ a: 1, b: 1, c: 1 }));
    for (const key of keys.slice(0, 200)) expect(balancer.pick(all, key)).toBe(balancer.pick(all, key));
  });

  it('builds the same ring in every instance (the mapping is a pure function of the upstreams)', () => {
    const one = new ConsistentHashBalancer(nodes({ a: 1, b: 1, c: 1 }));
    const two = new ConsistentHashBalancer(nodes({ c: 1, a: 1, b: 1 }));
    expect(names(keys.slice(0, 500).map((k) => two.pick(all, k)))).toEqual(
      names(keys.slice(0, 500).map((k) => one.pick(all, k))),
    );
  });

  it('spreads keys evenly (each of 4 within 15% of its share)', () => {
    const balancer = new ConsistentHashBalancer(nodes({ a: 1, b: 1, c: 1, d: 1 }));
    const got = counts(keys.map((k) => balancer.pick(all, k)));
    for (const n of Object.values(got)) expect(Math.abs(n - 5000)).toBeLessThan(750);
  });

  it('spreads keys by weight', () => {
    const balancer = new ConsistentHashBalancer(nodes({ a: 3, b: 1 }));
    const got = counts(keys.map((k) => balancer.pick(all, k)));
    expect(got.a! / got.b!).toBeGreaterThan(2.4);
    expect(got.a! / got.b!).toBeLessThan(3.6);
  });

  it('moves only the removed upstream’s keys (about 1/N) when one is taken away', () => {
    const five = new ConsistentHashBalancer(nodes({ a: 1, b: 1, c: 1, d: 1, e: 1 }));
    const four = new ConsistentHashBalancer(nodes({ a: 1, b: 1, c: 1, d: 1 }));
    const before = names(keys.map((k) => five.pick(all, k)));
    const after = names(keys.map((k) => four.pick(all, k)));
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] !== after[i]) {
        moved++;
        expect(before[i]).toBe('e'); // only keys that lived on the removed upstream move
      }
    }
    expect(moved / keys.length).toBeGreaterThan(0.15);
    expect(moved / keys.length).toBeLessThan(0.25);
  });

  it('skips an unavailable upstream without moving anyone else’s keys, and gives them back', () => {
    const ups = nodes({ a: 1, b: 1, c: 1 });
    const balancer = new ConsistentHashBalancer(ups);
    const before = names(keys.map((k) => balancer.pick(all, k)));
    const during = names(keys.map((k) => balancer.pick((u) => u !== ups[1], k)));
    for (let i = 0; i < keys.length; i++) {
      if (before[i] === 'b') expect(during[i]).not.toBe('b');
      else expect(during[i]).toBe(before[i]);
    }
    expect(names(keys.map((k) => balancer.pick(all, k)))).toEqual(before);
  });

  it('spreads requests without a key round robin', () => {
    const balancer = new ConsistentHashBalancer(nodes({ a: 1, b: 1 }));
    expect(names([balancer.pick(all), balancer.pick(all), balancer.pick(all)])).toEqual(['a', 'b', 'a']);
  });

  it('hashes to unsigned 32-bit values that differ for near-identical keys', () => {
    expect(hash32('a')).not.toBe(hash32('b'));
    for (const k of keys.slice(0, 100)) {
      expect(hash32(k)).toBeGreaterThanOrEqual(0);
      expect(hash32(k)).toBeLessThan(2 ** 32);
    }
  });
});
