import { describe, expect, it } from 'vitest';
import { composeResponse } from './compose.js';
import { compilePlan } from './plan.js';
import { aggregateSchema } from './schema.js';

const planOf = (options: unknown) => compilePlan(aggregateSchema.parse(options)).plan;

describe('composeResponse', () => {
  it('merges answers side by side without letting a "__proto__" member reshape the response', () => {
    const plan = planOf({
      parts: { a: { service: 's', path: '/a', merge: true }, b: { service: 's', path: '/b', merge: true } },
    });
    const a = JSON.parse('{"__proto__":{"polluted":true},"a":1}');
    const out = composeResponse(plan, [a, { b: 2 }], [true, true]);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(out.polluted).toBeUndefined();
    expect(out).toEqual({ a: 1, b: 2 });
  });

  it('leaves out internal and failed parts and runs the final shape on the whole', () => {
    const plan = planOf({
      parts: {
        cart: { service: 's', path: '/c', internal: true },
        product: { service: 's', path: '/p', group: 'page.product' },
        stock: { service: 's', path: '/s', optional: true },
      },
      shape: { rename: { 'page.product.name': 'title' }, deny: ['page.product.cost'] },
    });
    const out = composeResponse(
      plan,
      [{ items: [] }, { name: 'Lamp', cost: 3 }, undefined],
      [true, true, false],
    );
    expect(out).toEqual({ page: { product: {} }, title: 'Lamp' });
  });
});
