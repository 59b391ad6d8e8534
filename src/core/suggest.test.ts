import { describe, expect, it } from 'vitest';
import { closest, didYouMean, editDistance } from './suggest.js';

describe('did you mean', () => {
  it('counts a swap of two neighbouring letters as one edit', () => {
    expect(editDistance('btea', 'beta')).toBe(1);
    expect(editDistance('catalg', 'catalog')).toBe(1);
    expect(editDistance('abc', 'abc')).toBe(0);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('suggests beta for btea, even for a four-letter word', () => {
    expect(closest('btea', ['alpha', 'beta', 'gamma'])).toBe('beta');
    expect(didYouMean('btea', ['alpha', 'beta'])).toBe(' (did you mean "beta"?)');
  });

  it('suggests nothing for an unrelated word', () => {
    expect(closest('zzzz', ['beta', 'gamma'])).toBeUndefined();
  });
});
