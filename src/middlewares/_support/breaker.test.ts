import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { createMetricsRegistry } from '../../core/metrics.js';
import { isStoreSkipped, storeBreaker } from './breaker.js';

const deps = () => ({ logger: silentLogger(), metrics: createMetricsRegistry(), name: 'limit' });
const fail = () => Promise.reject(new Error('Command timed out'));

describe('storeBreaker', () => {
  it('opens after `failures` consecutive failures, then skips the store at once', async () => {
    const b = storeBreaker({ failures: 3, halfOpenAfter: 60_000 }, deps(), 'local');
    let calls = 0;
    const call = () => {
      calls++;
      return fail();
    };
    for (let i = 0; i < 3; i++) await expect(b.run(call)).rejects.toThrow(/timed out/);
    expect(b.health().status).toBe('degraded');
    const skipped = await b.run(call).catch((e: unknown) => e);
    expect(isStoreSkipped(skipped)).toBe(true);
    expect(calls).toBe(3);
  });

  it('half open: one probe reaches the store, the others do not wait for it; a good probe closes it', async () => {
    const b = storeBreaker({ failures: 1, halfOpenAfter: 1 }, deps(), 'local');
    await expect(b.run(fail)).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 5)); // past halfOpenAfter (1 ms)
    let release!: () => void;
    const probe = b.run(() => new Promise<string>((r) => (release = () => r('ok'))));
    const other = await b.run(async () => 'second').catch((e: unknown) => e);
    expect(isStoreSkipped(other)).toBe(true);
    release();
    expect(await probe).toBe('ok');
    expect(b.health().status).toBe('ok');
    expect(await b.run(async () => 'closed')).toBe('closed');
  });
});
