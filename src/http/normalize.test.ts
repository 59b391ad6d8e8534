import { describe, expect, it } from 'vitest';
import { normalizeTarget } from './normalize.js';

const path = (t: string, policy?: 'reject' | 'decode' | 'keep') => {
  const r = normalizeTarget(t, policy);
  return typeof r === 'string' ? r : r.path;
};

describe('normalizeTarget', () => {
  it('leaves a clean path alone and splits the query', () => {
    expect(normalizeTarget('/api/items?x=1&y=%2F')).toEqual({ path: '/api/items', query: 'x=1&y=%2F' });
    expect(normalizeTarget('/')).toEqual({ path: '/', query: '' });
  });

  it('merges duplicate slashes', () => {
    expect(path('//admin//users')).toBe('/admin/users');
  });

  it('removes dot segments, never above the root', () => {
    expect(path('/a/./b/../c')).toBe('/a/c');
    expect(path('/public/../admin')).toBe('/admin');
    expect(path('/../../etc/passwd')).toBe('/etc/passwd');
    expect(path('/a/b/..')).toBe('/a/');
    expect(path('/a/.')).toBe('/a/');
  });

  it('decodes percent-encoded unreserved characters before removing dot segments', () => {
    expect(path('/%61dmin')).toBe('/admin');
    expect(path('/public/%2e%2e/admin')).toBe('/admin');
    expect(path('/public/%2E%2E/%2E/admin')).toBe('/admin');
    expect(path('/a%7Eb%5fc')).toBe('/a~b_c');
  });

  it('keeps reserved and non-ASCII escapes, upper-cased', () => {
    expect(path('/caf%c3%a9')).toBe('/caf%C3%A9');
    expect(path('/a%3fb')).toBe('/a%3Fb');
  });

  it('refuses an encoded slash or backslash by default, so /admin%2Fx cannot dodge an /admin/* route', () => {
    expect(normalizeTarget('/admin%2Fsecret')).toBe('encoded-slash');
    expect(normalizeTarget('/admin%5csecret')).toBe('encoded-slash');
    expect(path('/admin%2Fsecret', 'decode')).toBe('/admin/secret');
    expect(path('/x/%2e%2e%2Fadmin', 'decode')).toBe('/admin');
    expect(path('/admin%2fsecret', 'keep')).toBe('/admin%2Fsecret');
  });

  // A raw `\` is a separator to WHATWG URL parsers (Node, browsers): every spelling of it, alone
  // or mixed with dot segments and escapes, is refused by default or read as `/` when decoding.
  it.each([
    ['/admin\\users', '/admin/users', '/admin%5Cusers'],
    ['/\\admin', '/admin', '/%5Cadmin'],
    ['/public\\..\\admin', '/admin', '/public%5C..%5Cadmin'],
    ['/public/..\\admin', '/admin', '/public/..%5Cadmin'],
    ['/public\\%2e%2e\\admin', '/admin', '/public%5C..%5Cadmin'],
    ['/public%5c..\\admin', '/admin', '/public%5C..%5Cadmin'],
    ['/a\\\\b', '/a/b', '/a%5C%5Cb'],
  ])('a raw backslash in %s: refused, decoded to %s, or kept as %s', (target, decoded, kept) => {
    expect(normalizeTarget(target)).toBe('backslash');
    expect(path(target, 'decode')).toBe(decoded);
    expect(path(target, 'keep')).toBe(kept);
  });

  it('refuses every spelling of an encoded backslash by default', () => {
    for (const t of ['/admin%5Cusers', '/admin%5cusers', '/public/..%5Cadmin', '/public%5C%2e%2e%5Cadmin']) {
      expect(normalizeTarget(t), t).toBe('encoded-slash');
    }
    expect(path('/public/..%5cadmin', 'decode')).toBe('/admin');
  });

  it('leaves a backslash in the query alone', () => {
    expect(normalizeTarget('/a?x=\\y')).toEqual({ path: '/a', query: 'x=\\y' });
  });

  it('refuses broken escapes and NUL', () => {
    expect(normalizeTarget('/a%zz')).toBe('invalid-percent-encoding');
    expect(normalizeTarget('/a%4')).toBe('invalid-percent-encoding');
    expect(normalizeTarget('/a%00b')).toBe('null-byte');
  });

  it('takes the path of an absolute-form target and refuses other forms', () => {
    expect(normalizeTarget('http://example.com/a//b?q')).toEqual({ path: '/a/b', query: 'q' });
    expect(normalizeTarget('http://example.com')).toEqual({ path: '/', query: '' });
    expect(normalizeTarget('*')).toBe('not-origin-form');
    expect(normalizeTarget('example.com:443')).toBe('not-origin-form');
  });

  it('drops a fragment', () => {
    expect(normalizeTarget('/a#frag?x')).toEqual({ path: '/a', query: '' });
  });
});
