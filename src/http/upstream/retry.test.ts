import { describe, expect, it } from 'vitest';
import { RetryBudget, ServiceRetryPolicy } from './retry.js';
import { serviceSchema } from './schema.js';
import type { RetryDecisionInput } from './types.js';

const retryDef = (retry: Record<string, unknown> = {}) =>
  serviceSchema.parse({ upstreams: ['http://x.test'], retry }).retry;

const failedGet: RetryDecisionInput = {
  method: 'GET',
  attempt: 1,
  outcome: 'connectFailure',
  retryNonIdempotent: false,
  bodySent: false,
};

describe('ServiceRetryPolicy', () => {
  it('never retries a POST or PATCH without the route opting in', () => {
    const policy = new ServiceRetryPolicy(retryDef({ attempts: 5 }));
    for (const method of ['POST', 'PATCH', 'post', 'CONNECT']) {
      for (const outcome of ['connectFailure', 'reset', 'timeout', 'http5xx'] as const) {
        expect(policy.shouldRetry({ ...failedGet, method, outcome, status: 503 })).toBe(false);
      }
    }
    expect(policy.refusal({ ...failedGet, method: 'POST' })).toBe('not-idempotent');
    expect(policy.shouldRetry({ ...failedGet, method: 'POST', retryNonIdempotent: true })).toBe(true);
  });

  it('retries idempotent methods', () => {
    const policy = new ServiceRetryPolicy(retryDef({ attempts: 5 }));
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']) {
      expect(policy.shouldRetry({ ...failedGet, method })).toBe(true);
    }
  });

  it('never retries once a body byte has been sent, even with the opt-in', () => {
    const policy = new ServiceRetryPolicy(retryDef());
    expect(policy.refusal({ ...failedGet, method: 'PUT', bodySent: true, retryNonIdempotent: true })).toBe(
      'body-sent',
    );
  });

  it('stops after `attempts` attempts in all', () => {
    const policy = new ServiceRetryPolicy(retryDef({ attempts: 3 }));
    expect(policy.shouldRetry({ ...failedGet, attempt: 1 })).toBe(true);
    expect(policy.shouldRetry({ ...failedGet, attempt: 2 })).toBe(true);
    expect(policy.refusal({ ...failedGet, attempt: 3 })).toBe('attempts');
    expect(new ServiceRetryPolicy(retryDef({ attempts: 1 })).refusal(failedGet)).toBe('attempts');
  });

  it('retries only the listed conditions', () => {
    const policy = new ServiceRetryPolicy(retryDef({ attempts: 5, on: ['connect-failure', 503] }));
    expect(policy.shouldRetry({ ...failedGet, outcome: 'http5xx', status: 503 })).toBe(true);
    expect(policy.refusal({ ...failedGet, outcome: 'http5xx', status: 502 })).toBe('condition');
    expect(policy.refusal({ ...failedGet, outcome: 'http5xx', status: 500 })).toBe('condition');
    expect(policy.refusal({ ...failedGet, outcome: 'reset' })).toBe('condition');
    expect(policy.refusal({ ...failedGet, outcome: 'timeout' })).toBe('condition');
    // A plain 500 is the application's answer, not a gateway failure: not retried by default.
    expect(
      new ServiceRetryPolicy(retryDef()).refusal({ ...failedGet, outcome: 'http5xx', status: 500 }),
    ).toBe('condition');
  });

  it('backs off with full jitter below min(max, base * 2^(attempt-1))', () => {
    const top = new ServiceRetryPolicy(
      retryDef({ backoff: { base: '10ms', max: '50ms' } }),
      Date.now,
      () => 0.999999,
    );
    expect([1, 2, 3, 4, 5].map((a) => top.backoffMs(a))).toEqual([9, 19, 39, 49, 49]);
    const bottom = new ServiceRetryPolicy(retryDef(), Date.now, () => 0);
    expect(bottom.backoffMs(3)).toBe(0);
  });
});

describe('RetryBudget', () => {
  it('allows retries up to the ratio of first attempts over the window', () => {
    let now = 1_000_000;
    const budget = new RetryBudget(0.2, 0, () => now);
    for (let i = 0; i < 100; i++) budget.recordAttempt();
    let allowed = 0;
    for (let i = 0; i < 100; i++) {
      if (budget.tryRetry()) {
        allowed++;
        budget.recordAttempt(); // the retry is an attempt too
      }
    }
    expect(allowed).toBe(20);
    now += 11_000; // the window has moved on: the old requests no longer pay for retries
    expect(budget.tryRetry()).toBe(false);
  });

  it('always allows minPerSecond retries each second', () => {
    let now = 5_000_000;
    const budget = new RetryBudget(0.2, 3, () => now);
    expect([1, 2, 3, 4].map(() => budget.tryRetry())).toEqual([true, true, true, false]);
    now += 1_000;
    expect(budget.tryRetry()).toBe(true);
  });

  it('refuses a policy’s retry when its budget is spent', () => {
    const refused: string[] = [];
    const policy = new ServiceRetryPolicy(
      retryDef({ attempts: 3, budget: { ratio: 0, minPerSecond: 1 } }),
      () => 42_000,
      Math.random,
      (retried, reason) => refused.push(retried ? 'retried' : String(reason)),
    );
    expect(policy.shouldRetry(failedGet)).toBe(true);
    expect(policy.shouldRetry(failedGet)).toBe(false);
    expect(refused).toEqual(['retried', 'budget']);
  });
});
