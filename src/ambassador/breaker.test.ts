import { describe, expect, it } from 'vitest';
import { ADMITTED, PROBE, REFUSED, UpstreamBreakers } from './breaker.js';

describe('UpstreamBreakers', () => {
  const config = {
    consecutiveFailures: 3,
    failureRatio: 0,
    minimumAttempts: 20,
    window: 10_000,
    halfOpenAfter: 50,
  };

  function clocked(c = config) {
    let now = 1_000;
    const changes: string[] = [];
    const b = new UpstreamBreakers(
      c,
      (_u, s) => changes.push(s),
      () => now,
    );
    return { b, changes, advance: (ms: number) => (now += ms) };
  }

  it('opens after consecutive failures, refuses until a probe is due, closes on its success', () => {
    const { b, changes, advance } = clocked();
    const u = b.of('u');
    for (let i = 0; i < 3; i++) u.record('http5xx', u.admit());
    expect(changes).toEqual(['open']);
    expect(u.admit()).toBe(REFUSED);
    advance(60);
    expect(u.admit()).toBe(PROBE);
    // One probe at a time: the others go elsewhere meanwhile.
    expect(u.admit()).toBe(REFUSED);
    u.record('success', PROBE);
    expect(changes).toEqual(['open', 'half-open', 'closed']);
    expect(b.status()).toEqual({ u: 'closed' });
    expect(u.admit()).toBe(ADMITTED);
  });

  it('a failed probe opens it again; a cancelled one lets the next call probe', () => {
    const { b, changes, advance } = clocked();
    const u = b.of('u');
    for (let i = 0; i < 3; i++) u.record('timeout', u.admit());
    advance(60);
    u.record('cancelled', u.admit());
    expect(b.status()).toEqual({ u: 'half-open' });
    u.record('reset', u.admit());
    expect(changes).toEqual(['open', 'half-open', 'open']);
    expect(u.admit()).toBe(REFUSED);
  });

  it('ignores late results of attempts admitted before it opened', () => {
    const { b, advance } = clocked();
    const u = b.of('u');
    const late = u.admit();
    for (let i = 0; i < 3; i++) u.record('http5xx', u.admit());
    advance(60);
    expect(u.admit()).toBe(PROBE);
    u.record('success', late);
    expect(b.status()).toEqual({ u: 'half-open' });
  });

  it('opens on the failure ratio, and a cancellation counts for nothing', () => {
    const { b } = clocked({
      consecutiveFailures: 0,
      failureRatio: 0.5,
      minimumAttempts: 4,
      window: 1_000,
      halfOpenAfter: 1_000,
    });
    const u = b.of('u');
    for (let i = 0; i < 10; i++) u.record('cancelled', u.admit());
    expect(b.status()).toEqual({ u: 'closed' });
    // More than half of the window's attempts failed (and past minimumAttempts): open.
    for (let i = 0; i < 3; i++) u.record('success', u.admit());
    for (let i = 0; i < 4; i++) u.record('http5xx', u.admit());
    expect(b.status()).toEqual({ u: 'open' });
  });

  it('forgets the breakers of upstreams discovery took away', () => {
    const { b } = clocked();
    const gone = b.of('gone');
    for (let i = 0; i < 3; i++) gone.record('http5xx', gone.admit());
    b.of('stays');
    expect(b.status()).toEqual({ gone: 'open', stays: 'closed' });
    expect(b.retain(['stays'])).toEqual(['gone']);
    expect(b.status()).toEqual({ stays: 'closed' });
    // Back later under the same address: a fresh breaker.
    expect(b.of('gone').admit()).toBe(ADMITTED);
  });
});
