import { describe, expect, it } from 'vitest';
import { compileRoutes, type RouteMatch } from './router.js';

function table(matches: RouteMatch[]) {
  const t = compileRoutes(matches.map((match, i) => ({ match, value: `r${i}` })));
  return (
    method: string,
    path: string,
    opts: { host?: string; headers?: Record<string, string>; query?: string } = {},
  ) => t.match(method, opts.host, path, opts.headers ?? {}, opts.query ?? '');
}

describe('route matching', () => {
  it('matches exact, param, wildcard and prefix paths', () => {
    const m = table([
      { path: '/health' },
      { path: '/items/:id' },
      { path: '/static/*' },
      { pathPrefix: '/api' },
    ]);
    expect(m('GET', '/health')?.value).toBe('r0');
    expect(m('GET', '/health/x')).toBeUndefined();
    expect(m('GET', '/items/42')).toEqual({ value: 'r1', params: { id: '42' } });
    expect(m('GET', '/static/css/site.css')?.params).toEqual({ '*': 'css/site.css' });
    expect(m('GET', '/api')?.value).toBe('r3');
    expect(m('GET', '/api/v1/x')?.value).toBe('r3');
    expect(m('GET', '/apix')).toBeUndefined();
  });

  it('decodes params', () => {
    const m = table([{ path: '/u/:name' }]);
    expect(m('GET', '/u/caf%C3%A9')?.params).toEqual({ name: 'café' });
  });

  it('filters by method; GET also serves HEAD', () => {
    const m = table([
      { path: '/a', methods: ['GET'] },
      { path: '/a', methods: ['POST'] },
    ]);
    expect(m('GET', '/a')?.value).toBe('r0');
    expect(m('HEAD', '/a')?.value).toBe('r0');
    expect(m('POST', '/a')?.value).toBe('r1');
    expect(m('DELETE', '/a')).toBeUndefined();
  });

  it('prefers the more specific path: static over param over wildcard', () => {
    const m = table([{ path: '/*' }, { path: '/items/*' }, { path: '/items/:id' }, { path: '/items/new' }]);
    expect(m('GET', '/items/new')?.value).toBe('r3');
    expect(m('GET', '/items/7')?.value).toBe('r2');
    expect(m('GET', '/items/7/parts')?.value).toBe('r1');
    expect(m('GET', '/other')?.value).toBe('r0');
  });

  it('falls back to a less specific route when a header or query condition fails', () => {
    const m = table([
      { pathPrefix: '/api' },
      { path: '/api/items/:id', headers: { 'x-beta': '1' } },
      { path: '/api/items/:id', query: { v: { regex: '^2' } } },
    ]);
    expect(m('GET', '/api/items/5', { headers: { 'x-beta': '1' } })).toEqual({
      value: 'r1',
      params: { id: '5' },
    });
    expect(m('GET', '/api/items/5', { query: 'v=2.1' })?.value).toBe('r2');
    expect(m('GET', '/api/items/5', { query: 'v=1' })).toEqual({ value: 'r0', params: { '*': 'items/5' } });
  });

  it('supports header prefix, regex and presence conditions', () => {
    const m = table([
      { path: '/a', headers: { accept: { prefix: 'application/json' } } },
      { path: '/a', headers: { authorization: { present: false } } },
      { path: '/a', headers: { 'user-agent': { regex: 'Mobile' } } },
    ]);
    expect(m('GET', '/a', { headers: { accept: 'application/json; q=1', authorization: 'x' } })?.value).toBe(
      'r0',
    );
    expect(m('GET', '/a', { headers: {} })?.value).toBe('r1');
    expect(m('GET', '/a', { headers: { authorization: 'x', 'user-agent': 'x Mobile' } })?.value).toBe('r2');
    expect(m('GET', '/a', { headers: { authorization: 'x' } })).toBeUndefined();
  });

  it('an explicit priority overrides specificity', () => {
    const m = table([{ path: '/items/new' }, { pathPrefix: '/items', priority: 10 }]);
    expect(m('GET', '/items/new')?.value).toBe('r1');
  });

  it('among equals, more conditions first, then the written order', () => {
    const m = table([{ path: '/a' }, { path: '/a', headers: { 'x-a': '1' } }, { path: '/a' }]);
    expect(m('GET', '/a', { headers: { 'x-a': '1' } })?.value).toBe('r1');
    expect(m('GET', '/a')?.value).toBe('r0');
  });

  it('matches hosts: exact before wildcard before any, ignoring port and case', () => {
    const m = table([
      { pathPrefix: '/' },
      { pathPrefix: '/', hosts: ['*.example.com'] },
      { pathPrefix: '/', hosts: ['api.example.com'] },
      { path: '/only-any' },
    ]);
    expect(m('GET', '/x', { host: 'API.example.com:8080' })?.value).toBe('r2');
    expect(m('GET', '/x', { host: 'www.example.com' })?.value).toBe('r1');
    expect(m('GET', '/x', { host: 'a.b.example.com.' })?.value).toBe('r1');
    expect(m('GET', '/x', { host: 'example.com' })?.value).toBe('r0');
    expect(m('GET', '/x')?.value).toBe('r0');
    // A host-specific catch-all is still more specific than an any-host route.
    expect(m('GET', '/only-any', { host: 'api.example.com' })?.value).toBe('r2');
  });

  it('a higher priority on an any-host route beats a host route; otherwise the host route wins', () => {
    const m = table([
      { pathPrefix: '/', hosts: ['api.example.com'] },
      { path: '/maintenance', priority: 5 },
      { path: '/other' },
    ]);
    expect(m('GET', '/maintenance', { host: 'api.example.com' })?.value).toBe('r1');
    expect(m('GET', '/other', { host: 'api.example.com' })?.value).toBe('r0');
  });

  it('a method-limited route does not hide a less specific route for other methods', () => {
    const m = table([{ path: '/items/:id', methods: ['GET'] }, { pathPrefix: '/items' }]);
    expect(m('GET', '/items/1')?.params).toEqual({ id: '1' });
    expect(m('PROPFIND', '/items/1')).toEqual({ value: 'r1', params: { '*': '1' } });
  });

  it('host-restricted routes are not reachable from other hosts', () => {
    const m = table([{ path: '/admin', hosts: ['admin.local'] }]);
    expect(m('GET', '/admin', { host: 'admin.local' })?.value).toBe('r0');
    expect(m('GET', '/admin', { host: 'evil.local' })).toBeUndefined();
    expect(m('GET', '/admin')).toBeUndefined();
  });

  it('matches correctly over 1,000 routes (throughput is measured by the benchmark, not here)', () => {
    const matches: RouteMatch[] = [];
    for (let i = 0; i < 1000; i++) {
      const k = i % 4;
      matches.push(
        k === 0
          ? { path: `/svc${i}/items/:id` }
          : k === 1
            ? { pathPrefix: `/api${i}` }
            : k === 2
              ? { path: `/exact/${i}`, methods: ['GET'] }
              : { path: `/h${i}/*`, headers: { 'x-tenant': 'a' } },
      );
    }
    const t = compileRoutes(matches.map((match, i) => ({ match, value: i })));
    const paths = ['/svc400/items/42', '/api401/x/y', '/exact/402', '/h403/z', '/nope'];
    const headers = { 'x-tenant': 'a' };
    expect(paths.map((p) => t.match('GET', 'example.com', p, headers, '')?.value)).toEqual([
      400,
      401,
      402,
      403,
      undefined,
    ]);
    expect(t.match('GET', 'example.com', '/h403/z', {}, '')).toBeUndefined();
    expect(t.match('POST', 'example.com', '/exact/402', {}, '')).toBeUndefined();
  });
});
