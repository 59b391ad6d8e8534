import { describe, expect, it } from 'vitest';
import { BrokenCircuitError, Cancelled, UpstreamBreakers } from './breaker.js';

const fail = () => Promise.reject(new Error('boom'));
const ok = () => Promise.resolve('ok');

describe('UpstreamBreakers', () => {
  const config = {
    consecutiveFailures: 3,
    failureRatio: 0,
    minimumAttempts: 20,
    window: 10_000,
    halfOpenAfter: 50,
  };

  it('opens after consecutive failures, refuses until a probe is due, closes on its success', async () => {
    const changes: string[] = [];
    const b = new UpstreamBreakers(config, (_u, s) => changes.push(s));
    const p = b.of('u');
    for (let i = 0; i < 3; i++) await expect(p.execute(fail)).rejects.toThrow('boom');
    expect(changes).toEqual(['open']);
    expect(b.refuses('u')).toBe(true);
    await expect(p.execute(ok)).rejects.toBeInstanceOf(BrokenCircuitError);
    await new Promise((r) => setTimeout(r, 60));
    expect(b.refuses('u')).toBe(false);
    await expect(p.execute(ok)).resolves.toBe('ok');
    expect(changes).toEqual(['open', 'half-open', 'closed']);
    expect(b.status()).toEqual({ u: 'closed' });
  });

  it('a failed probe opens it again', async () => {
    const changes: string[] = [];
    const b = new UpstreamBreakers(config, (_u, s) => changes.push(s));
    const p = b.of('u');
    for (let i = 0; i < 3; i++) await expect(p.execute(fail)).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 60));
    await expect(p.execute(fail)).rejects.toThrow('boom');
    expect(changes).toEqual(['open', 'half-open', 'open']);
    expect(b.refuses('u')).toBe(true);
  });

  it('opens on the failure ratio, and a cancellation counts for nothing', async () => {
    const b = new UpstreamBreakers(
      { consecutiveFailures: 0, failureRatio: 0.5, minimumAttempts: 4, window: 1_000, halfOpenAfter: 1_000 },
      () => {},
    );
    const p = b.of('u');
    for (let i = 0; i < 10; i++)
      await expect(p.execute(() => Promise.reject(new Cancelled('gone')))).rejects.toThrow();
    expect(b.status()).toEqual({ u: 'closed' });
    // More than half of the window's attempts failed (and past minimumAttempts): open.
    for (let i = 0; i < 3; i++) await p.execute(ok);
    for (let i = 0; i < 4; i++) await p.execute(fail).catch(() => {});
    expect(b.status()).toEqual({ u: 'open' });
  });
});
