import { describe, expect, it } from 'vitest';
import { isTrellisError } from '../core/errors.js';
import { startOrder } from './order.js';
import { backoffDelay } from './supervisor.js';

describe('startOrder', () => {
  it('puts each workload after what it depends on', () => {
    const order = startOrder({ web: ['api', 'tasks'], api: ['tasks'], tasks: [], cron: [] });
    expect(order.indexOf('tasks')).toBeLessThan(order.indexOf('api'));
    expect(order.indexOf('api')).toBeLessThan(order.indexOf('web'));
    expect(order).toHaveLength(4);
  });

  it('refuses a cycle, naming it', () => {
    try {
      startOrder({ a: ['b'], b: ['c'], c: ['a'] });
      expect.unreachable();
    } catch (err) {
      expect(isTrellisError(err, 'TRELLIS_E_HOST_DEPENDENCY_CYCLE')).toBe(true);
      expect((err as Error).message).toContain('a -> b -> c -> a');
    }
  });
});

describe('backoffDelay', () => {
  it('doubles from the base up to the max', () => {
    expect([0, 1, 2, 3, 10].map((n) => backoffDelay(n, 100, 1000))).toEqual([100, 200, 400, 800, 1000]);
  });
});
