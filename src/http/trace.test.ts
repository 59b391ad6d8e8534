import { describe, expect, it } from 'vitest';
import { retryAfterMs, retryAfterOfRaw } from './exchange/retry-after.js';
import { nextTraceparent } from './trace.js';

describe('nextTraceparent', () => {
  it('continues a valid trace with a new parent id', () => {
    const next = nextTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00');
    expect(next).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/);
    expect(next).not.toContain('00f067aa0ba902b7');
  });

  it('starts a new sampled trace for a missing, malformed or all-zero one', () => {
    for (const bad of [
      undefined,
      'junk',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      ['a', 'b'],
    ]) {
      expect(nextTraceparent(bad)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    }
  });
});

describe('retryAfterMs', () => {
  it('reads delta-seconds and HTTP dates', () => {
    expect(retryAfterMs('2')).toBe(2_000);
    const now = Date.parse('Wed, 02 Dec 2026 10:00:00 GMT');
    expect(retryAfterMs('Wed, 02 Dec 2026 10:00:03 GMT', now)).toBe(3_000);
    expect(retryAfterMs('Wed, 02 Dec 2026 09:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('soon')).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });

  it('finds the header in a raw list, in any case', () => {
    expect(
      retryAfterOfRaw([
        Buffer.from('Content-Type'),
        Buffer.from('x'),
        Buffer.from('Retry-After'),
        Buffer.from('1'),
      ]),
    ).toBe(1_000);
    expect(retryAfterOfRaw(['content-type', 'x'])).toBeUndefined();
  });
});
