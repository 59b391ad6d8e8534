import { describe, expect, it } from 'vitest';
import {
  byteRange,
  effectiveCacheControl,
  freshnessLifetime,
  initialAge,
  parseCacheControl,
  parseHttpDate,
  requestAllowance,
  type StorableInput,
  storable,
} from './policy.js';

const T = Date.UTC(1994, 10, 6, 8, 49, 37); // Sun, 06 Nov 1994 08:49:37 GMT

describe('RFC 9110 5.6.7: HTTP-date', () => {
  it.each([
    ['IMF-fixdate', 'Sun, 06 Nov 1994 08:49:37 GMT', T],
    ['RFC 850', 'Sunday, 06-Nov-94 08:49:37 GMT', T],
    ['asctime', 'Sun Nov  6 08:49:37 1994', T],
    ['asctime, two-digit day', 'Sun Nov 16 08:49:37 1994', Date.UTC(1994, 10, 16, 8, 49, 37)],
  ])('accepts %s', (_name, value, expected) => {
    expect(parseHttpDate(value)).toBe(expected);
  });

  it.each([
    ['UTC instead of GMT', 'Sun, 06 Nov 1994 08:49:37 UTC'],
    ['a missing comma', 'Sun 06 Nov 1994 08:49:37 GMT'],
    ['doubled spaces', 'Sun,  06 Nov 1994 08:49:37 GMT'],
    ['dashes in IMF-fixdate', 'Sun, 06-Nov-1994 08:49:37 GMT'],
    ['a one-digit hour', 'Sun, 06 Nov 1994 8:49:37 GMT'],
    ['a one-digit day', 'Sun, 6 Nov 1994 08:49:37 GMT'],
    ['a lower-case month', 'Sun, 06 nov 1994 08:49:37 GMT'],
    ['an unknown day name', 'Sux, 06 Nov 1994 08:49:37 GMT'],
    ['a day that does not exist', 'Wed, 31 Feb 2021 08:49:37 GMT'],
    ['an hour past 23', 'Sun, 06 Nov 1994 24:49:37 GMT'],
    ['a number', '0'],
    ['an ISO date', '1994-11-06T08:49:37Z'],
    ['trailing text', 'Sun, 06 Nov 1994 08:49:37 GMT x'],
  ])('refuses %s', (_name, value) => {
    expect(parseHttpDate(value)).toBeNaN();
  });
});

describe('RFC 9111 4.2.1: freshness lifetime', () => {
  const now = Date.now();
  const at = (ms: number) => new Date(ms).toUTCString();
  it.each([
    ['s-maxage wins over max-age', 's-maxage=10, max-age=20', {}, 10],
    ['max-age wins over Expires', 'max-age=20', { expires: at(now + 3600_000) }, 20],
    [
      'Expires minus the stored Date, not arrival',
      '',
      { date: at(now - 30_000), expires: at(now + 30_000) },
      60,
    ],
    ['an Expires in the past', '', { date: at(now), expires: at(now - 1000) }, 0],
    ['an invalid Expires is already expired', '', { expires: 'Thu, 01 Jan 2037 00:00:00 UTC' }, 0],
    ['Expires: 0', '', { expires: '0' }, 0],
    ['no-cache', 'no-cache, max-age=60', {}, 0],
    ['nothing explicit, no Last-Modified', '', {}, 0],
  ])('%s', (_name, cc, headers, expected) => {
    expect(freshnessLifetime(parseCacheControl(cc), headers, now)).toBe(expected);
  });
});

describe('RFC 9111 4.2.2: heuristic freshness from Last-Modified', () => {
  const now = Date.now();
  const h = { fraction: 0.1, max: 3600 };
  const lm = (agoS: number) => ({
    date: new Date(now).toUTCString(),
    'last-modified': new Date(now - agoS * 1000).toUTCString(),
  });
  it.each([
    ['10% of the time since Last-Modified', '', lm(1000), 200, 100],
    ['capped', '', lm(1_000_000), 200, 3600],
    ['not for a status that is not heuristically cacheable', '', lm(1000), 302, 0],
    ['public makes any status heuristically cacheable', 'public', lm(1000), 302, 100],
    ['never over an explicit Expires', '', { ...lm(1000), expires: new Date(now).toUTCString() }, 200, 0],
    ['not with an invalid Last-Modified', '', { 'last-modified': 'yesterday' }, 200, 0],
  ])('%s', (_name, cc, headers, status, expected) => {
    expect(freshnessLifetime(parseCacheControl(cc), headers, now, status, h)).toBe(expected);
  });
  it('is off with max 0', () => {
    expect(freshnessLifetime(new Map(), lm(1000), now, 200, { fraction: 0.1, max: 0 })).toBe(0);
  });
});

describe('RFC 9111 4.2.3: age on arrival', () => {
  const now = Date.now();
  it.each([
    ['the first of a listed Age', { age: '7200, 0' }, 7200],
    ['the first of a repeated Age', { age: ['7200', '0'] }, 7200],
    ['an invalid Age is ignored', { age: '-5' }, 0],
    ['the apparent age when Date is older', { age: '10', date: new Date(now - 60_000).toUTCString() }, 60],
    ['the Age when larger than the apparent age', { age: '100', date: new Date(now).toUTCString() }, 100],
  ])('%s', (_name, headers, expected) => {
    expect(Math.floor(initialAge(headers, now))).toBe(expected);
  });
});

describe('RFC 9213: CDN-Cache-Control', () => {
  it.each([
    [
      'replaces Cache-Control for this cache',
      { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60' },
      'max-age',
      true,
    ],
    [
      'can forbid what Cache-Control allows',
      { 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' },
      'no-store',
      true,
    ],
    ['an empty one is ignored', { 'cache-control': 'max-age=60', 'cdn-cache-control': '' }, 'max-age', true],
    ['absent: Cache-Control applies', { 'cache-control': 'private' }, 'private', true],
  ])('%s', (_name, headers, directive, present) => {
    expect(effectiveCacheControl(headers).has(directive)).toBe(present);
  });
});

describe('RFC 9111 3 and 3.5: storing, and requests with Authorization', () => {
  const base: StorableInput = {
    status: 200,
    method: 'GET',
    responseCc: new Map(),
    requestCc: new Map(),
    hasAuthorization: false,
    hasSetCookie: false,
    vary: [],
    lifetime: 60,
    hasValidator: false,
    cacheAuthorized: false,
    cacheSetCookie: false,
  };
  it.each([
    ['a fresh 200', {}, true, undefined],
    ['Authorization without an exception', { hasAuthorization: true }, false, 'authorization'],
    [
      'Authorization with public',
      { hasAuthorization: true, responseCc: parseCacheControl('public') },
      true,
      undefined,
    ],
    [
      'Authorization with s-maxage',
      { hasAuthorization: true, responseCc: parseCacheControl('s-maxage=5') },
      true,
      undefined,
    ],
    [
      'Authorization with must-revalidate',
      { hasAuthorization: true, responseCc: parseCacheControl('must-revalidate') },
      true,
      undefined,
    ],
    ['private', { responseCc: parseCacheControl('private') }, false, 'private'],
    ['no-store in the request', { requestCc: parseCacheControl('no-store') }, false, 'no-store'],
    ['206', { status: 206 }, false, 'status'],
    ['Vary: *', { vary: '*' as const }, false, 'vary *'],
    ['POST', { method: 'POST' }, false, 'method'],
  ] as Array<[string, Partial<StorableInput>, boolean, string | undefined]>)(
    '%s',
    (_n, over, store, reason) => {
      const d = storable({ ...base, ...over });
      expect(d.store).toBe(store);
      expect(d.reason).toBe(reason);
    },
  );
});

describe('RFC 9111 5.2.1: request directives', () => {
  it.each([
    ['max-age=10, age 5', 'max-age=10', 5, { revalidate: false }],
    ['max-age=10, age 11', 'max-age=10', 11, { revalidate: true }],
    ['max-age=0', 'max-age=0', 0.5, { revalidate: true }],
    ['no-cache', 'no-cache', 0, { revalidate: true }],
    ['max-stale without a value', 'max-stale', 0, { maxStale: Number.POSITIVE_INFINITY }],
    ['max-stale=30', 'max-stale=30', 0, { maxStale: 30 }],
    ['min-fresh=20', 'min-fresh=20', 0, { minFresh: 20 }],
    ['only-if-cached', 'only-if-cached', 0, { onlyIfCached: true }],
  ])('%s', (_name, value, age, expected) => {
    expect(requestAllowance(parseCacheControl(value), age)).toMatchObject(expected);
  });
});

describe('RFC 9110 14: a Range from a stored full response', () => {
  it.each([
    ['bytes=0-3', 10, { start: 0, end: 3 }],
    ['bytes=5-', 10, { start: 5, end: 9 }],
    ['bytes=-3', 10, { start: 7, end: 9 }],
    ['bytes=8-100', 10, { start: 8, end: 9 }],
    ['bytes=-100', 10, { start: 0, end: 9 }],
    ['bytes=10-', 10, 'unsatisfiable'],
    ['bytes=-0', 10, 'unsatisfiable'],
    ['bytes=0-1,4-5', 10, 'ignore'],
    ['bytes=5-2', 10, 'ignore'],
    ['items=0-1', 10, 'ignore'],
    ['bytes=-', 10, 'ignore'],
  ])('%s of %i bytes', (value, length, expected) => {
    expect(byteRange(value, length)).toEqual(expected);
  });
});
