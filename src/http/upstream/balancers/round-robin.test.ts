import { describe, expect, it } from 'vitest';
import { counts, names, nodes } from '../testing.js';
import { RoundRobinBalancer } from './round-robin.js';

const all = () => true;

describe('RoundRobinBalancer (smooth weighted, nginx)', () => {
  it('spreads weights 5,1,1 exactly as nginx does: a a b a c a a', () => {
    const balancer = new RoundRobinBalancer(nodes({ a: 5, b: 1, c: 1 }));
    const picks = Array.from({ length: 14 }, () => balancer.pick(all));
    expect(names(picks)).toEqual(['a', 'a', 'b', 'a', 'c', 'a', 'a', 'a', 'a', 'b', 'a', 'c', 'a', 'a']);
  });

  it('rotates equal weights in order', () => {
    const balancer = new RoundRobinBalancer(nodes({ a: 1, b: 1, c: 1 }));
    expect(names(Array.from({ length: 6 }, () => balancer.pick(all)))).toEqual([
      'a',
      'b',
      'c',
      'a',
      'b',
      'c',
    ]);
  });

  it('gives each upstream exactly its weighted share over a full cycle', () => {
    const balancer = new RoundRobinBalancer(nodes({ a: 3, b: 2, c: 5 }));
    expect(counts(Array.from({ length: 1000 }, () => balancer.pick(all)))).toEqual({
      a: 300,
      b: 200,
      c: 500,
    });
  });

  it('skips upstreams the filter refuses and shares among the rest by weight', () => {
    const ups = nodes({ a: 1, b: 2, c: 1 });
    const balancer = new RoundRobinBalancer(ups);
    const notB = (u: (typeof ups)[number]) => u !== ups[1];
    expect(counts(Array.from({ length: 100 }, () => balancer.pick(notB)))).toEqual({ a: 50, c: 50 });
  });

  it('returns undefined only when the filter refuses everyone', () => {
    const balancer = new RoundRobinBalancer(nodes({ a: 1, b: 1 }));
    expect(balancer.pick(() => false)).toBeUndefined();
  });
});
