import { describe, expect, it } from 'vitest';
import { isHashedAsset } from './cache-rules.js';
import { ifRangeHolds, noneMatchHits, notModifiedSince } from './conditional.js';
import { globToRegExp } from './glob.js';
import { pickVariant } from './negotiate.js';
import { parseRange } from './range.js';
import { toStaticPath } from './request-path.js';

describe('static: Range parsing', () => {
  it.each([
    ['bytes=0-4', [{ start: 0, end: 4 }]],
    ['bytes=5-', [{ start: 5, end: 9 }]],
    ['bytes=-2', [{ start: 8, end: 9 }]],
    ['bytes=0-100', [{ start: 0, end: 9 }]],
    [
      'bytes=0-0, 5-6',
      [
        { start: 0, end: 0 },
        { start: 5, end: 6 },
      ],
    ],
    ['bytes=20-30', 'unsatisfiable'],
    ['bytes=-0', 'unsatisfiable'],
    ['bytes=5-2', 'ignore'],
    ['items=0-1', 'ignore'],
    ['bytes=a-b', 'ignore'],
    ['bytes=0-5,3-8', 'too-many'],
  ])('%s on 10 bytes', (header, expected) => {
    expect(parseRange(header, 10, 16)).toEqual(expected);
  });

  it('counts ranges before parsing them', () => {
    expect(parseRange(`bytes=${'x,'.repeat(100_000)}`, 10, 16)).toBe('too-many');
  });
});

describe('static: conditional requests', () => {
  it('compares If-None-Match weakly and If-Range strongly', () => {
    expect(noneMatchHits('W/"a", "b"', '"a"')).toBe(true);
    expect(noneMatchHits('*', '"a"')).toBe(true);
    expect(noneMatchHits('"c"', '"a"')).toBe(false);
    expect(ifRangeHolds('"a"', '"a"', 'x')).toBe(true);
    expect(ifRangeHolds('W/"a"', '"a"', 'x')).toBe(false);
    const date = new Date(1_700_000_000_000).toUTCString();
    expect(ifRangeHolds(date, '"a"', date)).toBe(true);
    expect(notModifiedSince(date, 1_700_000_000_900)).toBe(true);
    expect(notModifiedSince(date, 1_700_000_001_000)).toBe(false);
    expect(notModifiedSince('not a date', 0)).toBe(false);
  });
});

describe('static: Accept-Encoding', () => {
  const variants = [
    { encoding: 'br' as const, size: 1, ref: 'b' },
    { encoding: 'gzip' as const, size: 2, ref: 'g' },
  ];
  it.each([
    ['gzip, deflate, br', 'br'],
    ['gzip', 'gzip'],
    ['br;q=0, gzip;q=0.5', 'gzip'],
    ['*', 'br'],
    ['*;q=0', undefined],
    ['identity', undefined],
    [undefined, undefined],
  ])('%s picks %s', (header, expected) => {
    expect(pickVariant(variants, header)?.encoding).toBe(expected);
  });
});

describe('static: paths, globs, hashed names', () => {
  it('decodes once and refuses what could leave the root', () => {
    expect(toStaticPath('/a/b%20c.txt', false)).toEqual({ rel: 'a/b c.txt', dir: false });
    expect(toStaticPath('/a/', false)).toEqual({ rel: 'a', dir: true });
    expect(toStaticPath('/%252e%252e/x', false)).toEqual({ rel: '%2e%2e/x', dir: false });
    expect(toStaticPath('/%2e%2e/x', false)).toBe('denied');
    expect(toStaticPath('/a%2fb', false)).toBe('denied');
    expect(toStaticPath('/%c0%ae', false)).toBe('malformed');
    expect(toStaticPath('/a%00', false)).toBe('malformed');
    expect(toStaticPath('/.env', false)).toBe('denied');
    expect(toStaticPath('/.env', true)).toEqual({ rel: '.env', dir: false });
    expect(toStaticPath('/.well-known/security.txt', false)).toEqual({
      rel: '.well-known/security.txt',
      dir: false,
    });
    expect(toStaticPath('/.trellis/live.json', true)).toBe('denied');
  });

  it('compiles globs', () => {
    expect(globToRegExp('*.html').test('a/b/index.html')).toBe(true);
    expect(globToRegExp('assets/**').test('assets/x/y.js')).toBe(true);
    expect(globToRegExp('assets/**').test('other/assets/y.js')).toBe(false);
    expect(globToRegExp('**/*.{js,css}').test('a/b.css')).toBe(true);
    expect(globToRegExp('**/*.{js,css}').test('b.css')).toBe(true);
    expect(globToRegExp('img/?.png').test('img/a.png')).toBe(true);
  });

  it.each([
    ['assets/app.3f2a1b9c.js', true],
    ['assets/index-BkH2xq9Z.css', true],
    ['chunk.a1b2c3d4e5.woff2', true],
    ['logo-original.png', false],
    ['index.html', false],
    ['app.js', false],
  ])('%s hashed: %s', (name, expected) => {
    expect(isHashedAsset(name)).toBe(expected);
  });
});
