import { describe, expect, it } from 'vitest';
import type { RequestContext } from '../../http/types.js';
import { keyFunction, limitKey } from './key.js';

const ctx = (over: { headers?: Record<string, string>; state?: Record<string, unknown> } = {}) =>
  ({
    clientIp: '203.0.113.7',
    req: { headers: over.headers ?? {} },
    state: over.state ?? {},
  }) as unknown as RequestContext;

describe('limit keys', () => {
  it('keys by IP, header, API key name or JWT claim, falling back to the IP when the value is missing', () => {
    const parse = (k: unknown) => keyFunction(limitKey().parse(k));
    expect(parse(undefined)(ctx())).toBe('ip:203.0.113.7');
    expect(parse({ header: 'X-Client' })(ctx({ headers: { 'x-client': 'acme' } }))).toBe('h:acme');
    expect(parse({ header: 'X-Client' })(ctx())).toBe('ip:203.0.113.7');
    expect(parse('apiKey')(ctx({ state: { apiKey: { name: 'partner' } } }))).toBe('key:partner');
    expect(parse('apiKey')(ctx())).toBe('ip:203.0.113.7');
    expect(parse({ jwtClaim: 'sub' })(ctx({ state: { jwt: { sub: 'u1' } } }))).toBe('jwt:u1');
    expect(parse({ jwtClaim: 'sub' })(ctx({ state: { jwt: {} } }))).toBe('ip:203.0.113.7');
    // Distinct kinds never collide: a header value that looks like an IP key stays a header key.
    expect(parse({ header: 'x-client' })(ctx({ headers: { 'x-client': 'ip:203.0.113.7' } }))).toBe(
      'h:ip:203.0.113.7',
    );
  });

  it('refuses unknown key kinds', () => {
    expect(() => limitKey().parse('cookie')).toThrow();
    expect(() => limitKey().parse({ header: 'x', extra: 1 })).toThrow();
  });
});
