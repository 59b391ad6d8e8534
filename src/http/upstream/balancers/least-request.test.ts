import { describe, expect, it } from 'vitest';
import { counts, nodes } from '../testing.js';
import { LeastRequestBalancer } from './least-request.js';

const all = () => true;

describe('LeastRequestBalancer (power of two choices)', () => {
  it('sends to the less loaded of the two it draws', () => {
    const [a, b] = nodes({ a: 1, b: 1 });
    a!.inFlight = 10;
    b!.inFlight = 2;
    const balancer = new LeastRequestBalancer([a!, b!]);
    for (let i = 0; i < 50; i++) expect(balancer.pick(all)).toBe(b);
  });

  it('avoids the most loaded upstream entirely when there are several', () => {
    const ups = nodes({ a: 1, b: 1, c: 1, d: 1 });
    ups[0]!.inFlight = 100;
    const balancer = new LeastRequestBalancer(ups);
    // P2C never picks the single most loaded one: it always loses its duel.
    const got = counts(Array.from({ length: 3000 }, () => balancer.pick(all)));
    expect(got.a).toBeUndefined();
    for (const name of ['b', 'c', 'd']) expect(got[name]).toBeGreaterThan(800);
  });

  it('compares load per unit of weight', () => {
    const [a, b] = nodes({ a: 4, b: 1 });
    a!.inFlight = 6; // (6+1)/4 = 1.75
    b!.inFlight = 1; // (1+1)/1 = 2
    const balancer = new LeastRequestBalancer([a!, b!]);
    for (let i = 0; i < 20; i++) expect(balancer.pick(all)).toBe(a);
  });

  it('shares load by weight', () => {
    const ups = nodes({ a: 3, b: 1, c: 2 });
    const balancer = new LeastRequestBalancer(ups);
    // Requests that stay in flight: each pick adds load where it went.
    for (let i = 0; i < 6000; i++) balancer.pick(all)!.inFlight++;
    expect(ups.map((u) => u.inFlight / u.weight).every((perWeight) => Math.abs(perWeight - 1000) <= 2)).toBe(
      true,
    );
  });

  it('draws idle upstreams in proportion to their weight', () => {
    const balancer = new LeastRequestBalancer(nodes({ a: 1, b: 1, c: 2 }));
    // With everyone idle, a tie between a and b goes to the first (weighted) draw, c wins
    // whenever drawn; a and b share what is left about evenly.
    const got = counts(Array.from({ length: 8000 }, () => balancer.pick(all)));
    expect(got.c! / 8000).toBeGreaterThan(0.75);
    expect(got.a! / got.b!).toBeGreaterThan(0.7);
    expect(got.a! / got.b!).toBeLessThan(1.4);
  });

  it('keeps picks spread when load follows the picks', () => {
    const ups = nodes({ a: 1, b: 1, c: 1 });
    const balancer = new LeastRequestBalancer(ups);
    for (let i = 0; i < 300; i++) balancer.pick(all)!.inFlight++;
    const loads = ups.map((u) => u.inFlight);
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(3);
  });

  it('only ever returns an upstream the filter accepts', () => {
    const ups = nodes({ a: 1, b: 1, c: 1 });
    const balancer = new LeastRequestBalancer(ups);
    const onlyC = (u: (typeof ups)[number]) => u === ups[2];
    for (let i = 0; i < 20; i++) expect(balancer.pick(onlyC)).toBe(ups[2]);
    expect(balancer.pick(() => false)).toBeUndefined();
  });
});
