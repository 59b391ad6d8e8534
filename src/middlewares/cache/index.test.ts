import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { type Dispatcher, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Handler, RequestContext } from '../../http/types.js';
import { compressMiddleware } from '../compress/index.js';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { cacheMiddleware } from './index.js';
import { MemoryCacheStore } from './store.js';

let srv: ChainServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

type Origin = (ctx: RequestContext, hit: number) => void | Promise<void>;

/** A cache in front of an origin that counts what reaches it. */
async function start(origin: Origin, options: Record<string, unknown> = {}) {
  const mw = await createMiddleware(cacheMiddleware, options);
  const seen: RequestContext['req'][] = [];
  srv = await serveChain([mw], (ctx) => {
    seen.push(ctx.req);
    return origin(ctx, seen.length);
  });
  return { url: srv.url, seen, close: mw.close };
}

async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const r = await request(url, { method, headers });
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
}

async function until(cond: () => boolean, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const json =
  (cc: string, extra: Record<string, string> = {}) =>
  (ctx: RequestContext, hit: number) => {
    ctx.res.writeHead(200, [
      'content-type',
      'application/json',
      'cache-control',
      cc,
      ...Object.entries(extra).flat(),
    ]);
    ctx.res.end(JSON.stringify({ hit }));
  };

describe('cache', () => {
  it('serves fresh responses from the cache with Age and Cache-Status; HEAD too', async () => {
    const { url, seen } = await start(json('public, max-age=60'));
    const miss = await get(`${url}/a`);
    expect(miss.headers['cache-status']).toBe('trellis; fwd=miss; fwd-status=200');
    const hit = await get(`${url}/a`);
    expect(hit.body).toBe(miss.body);
    expect(hit.headers['cache-status']).toBe('trellis; hit');
    expect(Number(hit.headers.age)).toBeGreaterThanOrEqual(0);
    expect(hit.headers['content-length']).toBe(String(miss.body.length));
    const head = await get(`${url}/a`, {}, 'HEAD');
    expect(head.headers['cache-status']).toBe('trellis; hit');
    expect(head.body).toBe('');
    expect(seen.length).toBe(1);
    // The query string is part of the key.
    await get(`${url}/a?page=2`);
    expect(seen.length).toBe(2);
  });

  it('never stores no-store, private, Set-Cookie or Authorization-dependent answers', async () => {
    for (const [cc, extra, reqHeaders] of [
      ['no-store', {}, {}],
      ['private, max-age=60', {}, {}],
      ['public, max-age=60', { 'set-cookie': 'sid=secret' }, {}],
      ['max-age=60', {}, { authorization: 'Bearer user-1' }],
    ] as Array<[string, Record<string, string>, Record<string, string>]>) {
      const { url, seen, close } = await start(json(cc, extra));
      await get(url, reqHeaders);
      const second = await get(url, {});
      expect(second.body, cc).toBe('{"hit":2}');
      expect(second.headers['set-cookie'], cc).toEqual(extra['set-cookie']);
      expect(seen.length, cc).toBe(2);
      await srv!.close();
      await close?.();
    }
  });

  it('keys variants by the Vary headers and only those: cache poisoning attempts stay with the attacker', async () => {
    const { url, seen } = await start((ctx) => {
      const lang = ctx.req.headers['x-lang'] ?? 'en';
      ctx.res.writeHead(200, {
        'content-type': 'text/plain',
        'cache-control': 'max-age=60',
        vary: 'X-Lang',
      });
      // The origin reflects Host: an attacker's Host must not reach other users through the cache.
      ctx.res.end(`${lang} for ${ctx.req.headers.host}`);
    });
    const { port } = new URL(url);
    const evilHost = await get(url, { host: 'evil.example', 'x-lang': 'en' });
    expect(evilHost.body).toBe('en for evil.example');
    const en = await get(url, { 'x-lang': 'en' });
    expect(en.body).toBe(`en for 127.0.0.1:${port}`);
    const fr = await get(url, { 'x-lang': 'fr' });
    expect(fr.body).toBe(`fr for 127.0.0.1:${port}`);
    // Headers not named in Vary do not split the cache (and cannot select a variant).
    const again = await get(url, { 'x-lang': 'en', 'x-forwarded-host': 'evil.example', 'x-random': '1' });
    expect(again.body).toBe(`en for 127.0.0.1:${port}`);
    expect(again.headers['cache-status']).toBe('trellis; hit');
    expect(seen.length).toBe(3);
  });

  it('revalidates a stale entry with its ETag; a 304 is answered with the stored body', async () => {
    const conditionals: unknown[] = [];
    const { url } = await start((ctx, hit) => {
      conditionals.push(ctx.req.headers['if-none-match']);
      if (ctx.req.headers['if-none-match'] === '"v1"') {
        ctx.res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=0' });
        ctx.res.end();
        return;
      }
      ctx.res.writeHead(200, { 'content-type': 'text/plain', etag: '"v1"', 'cache-control': 'max-age=0' });
      ctx.res.end(`body ${hit}`);
    });
    await get(url);
    const second = await get(url);
    expect(second.status).toBe(200);
    expect(second.body).toBe('body 1');
    expect(second.headers['cache-status']).toBe('trellis; hit; detail=revalidated');
    expect(conditionals).toEqual([undefined, '"v1"']);
    // A client's own validator is answered 304 from the cache.
    const conditional = await get(url, { 'if-none-match': 'W/"v1"' });
    expect(conditional.status).toBe(304);
    expect(conditional.body).toBe('');
  });

  it('stale-while-revalidate serves the stale body at once and refreshes in the background', async () => {
    const { url, seen } = await start((ctx, hit) => {
      const cc = hit === 1 ? 'max-age=0, stale-while-revalidate=60' : 'max-age=60';
      ctx.res.writeHead(200, { 'content-type': 'text/plain', etag: `"v${hit}"`, 'cache-control': cc });
      ctx.res.end(`v${hit}`);
    });
    await get(url);
    const stale = await get(url);
    expect(stale.body).toBe('v1');
    expect(stale.headers['cache-status']).toBe('trellis; hit; detail=stale-while-revalidate');
    await until(() => seen.length === 2);
    let fresh = await get(url);
    // The background fill may still be storing; poll for the refreshed body.
    const deadline = Date.now() + 5000;
    while (fresh.body !== 'v2' && Date.now() < deadline) fresh = await get(url);
    expect(fresh.body).toBe('v2');
    expect(fresh.headers['cache-status']).toBe('trellis; hit');
  });

  it('stale-if-error answers from the stale entry when the origin fails', async () => {
    const { url } = await start((ctx, hit) => {
      if (hit > 1) {
        ctx.res.writeHead(502, { 'content-type': 'text/plain' }).end('upstream down');
        return;
      }
      ctx.res.writeHead(200, {
        'content-type': 'text/plain',
        etag: '"a"',
        'cache-control': 'max-age=0, stale-if-error=60',
      });
      ctx.res.end('good');
    });
    await get(url);
    const r = await get(url);
    expect(r.status).toBe(200);
    expect(r.body).toBe('good');
    expect(r.headers['cache-status']).toBe('trellis; hit; detail=stale-if-error');
  });

  it('coalesces a burst of misses into one upstream request', async () => {
    let release: (() => void) | undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { url, seen } = await start(async (ctx) => {
      await gate;
      ctx.res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
      ctx.res.end('once');
    });
    const burst = Array.from({ length: 20 }, () => get(`${url}/hot`));
    await until(() => seen.length === 1);
    release!();
    const results = await Promise.all(burst);
    expect(results.every((r) => r.body === 'once' && r.status === 200)).toBe(true);
    expect(seen.length).toBe(1);
  });

  it('a successful POST, PUT, PATCH or DELETE invalidates every variant of its URL; a failed one does not', async () => {
    const { url, seen } = await start((ctx, hit) => {
      if (ctx.req.method === 'POST') {
        ctx.res.writeHead(ctx.req.headers['x-fail'] ? 500 : 201).end();
        return;
      }
      ctx.res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', vary: 'x-v' });
      ctx.res.end(`v${hit}`);
    });
    await get(`${url}/items`, { 'x-v': 'a' });
    await get(`${url}/items`, { 'x-v': 'b' });
    expect((await get(`${url}/items`, { 'x-v': 'a' })).headers['cache-status']).toBe('trellis; hit');
    await (
      await request(`${url}/items`, { method: 'POST', headers: { 'x-fail': '1' }, body: 'x' })
    ).body.text();
    expect((await get(`${url}/items`, { 'x-v': 'a' })).headers['cache-status']).toBe('trellis; hit');
    await (await request(`${url}/items`, { method: 'POST', body: 'x' })).body.text();
    const before = seen.length;
    let a = await get(`${url}/items`, { 'x-v': 'a' });
    // Invalidation is written when the POST's answer finishes; poll briefly for it.
    const deadline = Date.now() + 5000;
    while (a.headers['cache-status'] === 'trellis; hit' && Date.now() < deadline)
      a = await get(`${url}/items`, { 'x-v': 'a' });
    expect(a.headers['cache-status']).toContain('fwd=miss');
    expect((await get(`${url}/items`, { 'x-v': 'b' })).headers['cache-status']).toContain('fwd=miss');
    expect(seen.length).toBeGreaterThan(before);
  });

  it('a hit keeps headers set before the cache, repeated stored headers and its own request id', async () => {
    const cache = await createMiddleware(cacheMiddleware, {});
    let n = 0;
    const ids: string[] = [];
    // An outer middleware that sets a header with setHeader before the cache runs (as rateLimit does).
    const outer =
      (next: Handler): Handler =>
      (ctx) => {
        ids.push(ctx.requestId);
        ctx.res.setHeader('x-outer', String(++n));
        return next(ctx);
      };
    let origin = 0;
    srv = await serveChain([outer, cache], (ctx) => {
      origin++;
      ctx.res.writeHead(200, [
        'cache-control',
        'max-age=60',
        'link',
        '</a>; rel=preload',
        'link',
        '</b>; rel=preload',
      ]);
      ctx.res.end('body');
    });
    await get(srv.url);
    for (const want of ['2', '3']) {
      const hit = await get(srv.url);
      expect(hit.headers['cache-status']).toBe('trellis; hit');
      expect(hit.headers['x-outer']).toBe(want);
      expect(hit.headers.link).toEqual(['</a>; rel=preload', '</b>; rel=preload']);
      expect(hit.headers['x-request-id']).toBe(ids.at(-1));
      expect(hit.body).toBe('body');
    }
    expect(origin).toBe(1);
  });

  it('a hit with nothing set before the cache keeps repeated stored headers', async () => {
    const { url, seen } = await start((ctx) => {
      ctx.res.writeHead(200, [
        'cache-control',
        'max-age=60',
        'link',
        '</a>; rel=preload',
        'link',
        '</b>; rel=preload',
      ]);
      ctx.res.end('body');
    });
    await get(url);
    const hit = await get(url);
    expect(hit.headers['cache-status']).toBe('trellis; hit');
    expect(hit.headers.link).toEqual(['</a>; rel=preload', '</b>; rel=preload']);
    expect(seen.length).toBe(1);
  });

  it('serves binary bodies byte for byte on a hit, small and large', async () => {
    for (const n of [300, 40_000]) {
      const bytes = Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + 7) % 256));
      await srv?.close();
      const { url, seen } = await start((ctx) => {
        ctx.res.writeHead(200, ['content-type', 'application/octet-stream', 'cache-control', 'max-age=60']);
        ctx.res.end(bytes);
      });
      for (let i = 0; i < 2; i++) {
        const r = await request(url);
        expect(Buffer.from(await r.body.arrayBuffer()).equals(bytes), `${n} bytes, request ${i}`).toBe(true);
        if (i === 1) expect(r.headers['content-length']).toBe(String(n));
      }
      expect(seen.length).toBe(1);
    }
  });

  it('passes large bodies through without storing them', async () => {
    const { url, seen } = await start(json('max-age=60'), { maxEntrySize: '8b' });
    await get(url);
    await get(url);
    expect(seen.length).toBe(2);
  });
});

/** A response's content-encoding and its body, decoded. */
async function decoded(r: Dispatcher.ResponseData): Promise<{ enc: unknown; text: string }> {
  const raw = Buffer.from(await r.body.arrayBuffer());
  const enc = r.headers['content-encoding'];
  const body = enc === 'gzip' ? gunzipSync(raw) : enc === 'br' ? brotliDecompressSync(raw) : raw;
  return { enc, text: body.toString() };
}

describe('cache with compress', () => {
  it('stores compressed variants per Accept-Encoding when compress runs inside the cache', async () => {
    const cache = await createMiddleware(cacheMiddleware, {});
    const squeeze = await createMiddleware(compressMiddleware, {});
    let hits = 0;
    const body = 'x'.repeat(5000);
    srv = await serveChain([cache, squeeze], (ctx) => {
      hits++;
      ctx.res.writeHead(200, ['content-type', 'text/plain', 'cache-control', 'max-age=60']);
      ctx.res.end(body);
    });
    const fetchWith = async (ae: string) => {
      const r = await request(srv!.url, { headers: { 'accept-encoding': ae } });
      const { enc, text } = await decoded(r);
      return { enc, text, status: r.headers['cache-status'] };
    };
    const gz = await fetchWith('gzip');
    const br = await fetchWith('br');
    const gz2 = await fetchWith('gzip');
    expect([gz.enc, br.enc, gz2.enc]).toEqual(['gzip', 'br', 'gzip']);
    expect([gz.text, br.text, gz2.text].every((t) => t === body)).toBe(true);
    expect(gz2.status).toBe('trellis; hit');
    expect(hits).toBe(2);
  });
});

describe('compress with cache', () => {
  it('compresses cache hits when compress runs outside the cache', async () => {
    const cache = await createMiddleware(cacheMiddleware, {});
    const squeeze = await createMiddleware(compressMiddleware, {});
    let hits = 0;
    const body = 'y'.repeat(5000);
    srv = await serveChain([squeeze, cache], (ctx) => {
      hits++;
      ctx.res.writeHead(200, ['content-type', 'text/plain', 'cache-control', 'max-age=60']);
      ctx.res.end(body);
    });
    for (const ae of ['gzip', 'br', 'identity']) {
      const r = await request(srv.url, { headers: { 'accept-encoding': ae } });
      const { enc, text } = await decoded(r);
      expect(enc, ae).toBe(ae === 'identity' ? undefined : ae);
      expect(text, ae).toBe(body);
    }
    expect(hits).toBe(1);
  });
});

describe('MemoryCacheStore', () => {
  it('evicts least recently used entries past its byte limit', async () => {
    // Bodies up to 16 KB count twice (their string copy for the hit path): ~2.1 KB each here.
    const store = new MemoryCacheStore(8000);
    const entry = (n: number) => ({
      status: 200,
      headers: {},
      body: Buffer.alloc(n),
      storedAt: Date.now(),
      initialAge: 0,
      lifetime: 60,
      swr: 0,
      sie: 0,
      mustRevalidate: false,
    });
    await store.set('a', entry(1000), 60_000);
    await store.set('b', entry(1000), 60_000);
    await store.set('c', entry(1000), 60_000);
    await store.get('a');
    await store.set('d', entry(1000), 60_000);
    expect(await store.get('b')).toBeUndefined();
    expect(await store.get('a')).toBeDefined();
    expect(store.size).toBeLessThanOrEqual(8000);
    await store.set('huge', entry(10_000), 60_000);
    expect(await store.get('huge')).toBeUndefined();
  });
});

describe('cache: RFC 9111 conformance through the middleware', () => {
  const at = (ms: number) => new Date(ms).toUTCString();
  /** An origin answering `headers` (a function for per-request values) and its hit number. */
  const origin =
    (headers: (hit: number) => Record<string, string>, body = (hit: number) => `hit ${hit}`) =>
    (ctx: RequestContext, hit: number) => {
      ctx.res.writeHead(200, ['content-type', 'text/plain', ...Object.entries(headers(hit)).flat()]);
      ctx.res.end(body(hit));
    };

  it('keeps the stored Date on hits and measures Expires and age from it (4, 4.2.1, 4.2.3)', async () => {
    const date = at(Date.now() - 30_000);
    const { url, seen } = await start(origin(() => ({ date, expires: at(Date.now() + 30_000) })));
    await get(url);
    const hit = await get(url);
    expect(hit.headers['cache-status']).toBe('trellis; hit');
    expect(hit.headers.date).toBe(date);
    // The response was 30 s old on arrival (its Date), so it is about 30 s old now.
    expect(Number(hit.headers.age)).toBeGreaterThanOrEqual(29);
    expect(seen.length).toBe(1);
  });

  it('an invalid Expires is already expired; a listed Age counts by its first value (4.2.1, 5.1, 5.3)', async () => {
    for (const headers of [
      { expires: 'Thu, 01 Jan 2037 00:00:00 UTC' } as Record<string, string>,
      { expires: 'Thu 01 Jan 2037 00:00:00 GMT' },
      { expires: 'Thu, 01 Jan 2037 0:00:00 GMT' },
      { 'cache-control': 'max-age=3600', age: '7200, 0' },
    ]) {
      const { url, seen, close } = await start(origin(() => headers));
      await get(url);
      const second = await get(url);
      expect(second.headers['cache-status'], JSON.stringify(headers)).not.toBe('trellis; hit');
      expect(seen.length, JSON.stringify(headers)).toBe(2);
      await srv!.close();
      await close?.();
    }
  });

  it('a success of an unknown (extension) method invalidates the URL (4.4)', async () => {
    const { url } = await start((ctx, hit) => {
      if (ctx.req.method !== 'GET') return void ctx.res.writeHead(204).end();
      origin(() => ({ 'cache-control': 'max-age=60' }))(ctx, hit);
    });
    await get(`${url}/doc`);
    expect((await get(`${url}/doc`)).headers['cache-status']).toBe('trellis; hit');
    await (await request(`${url}/doc`, { method: 'REPORT' as 'GET' })).body.text();
    let after = await get(`${url}/doc`);
    const deadline = Date.now() + 5000;
    while (after.headers['cache-status'] === 'trellis; hit' && Date.now() < deadline)
      after = await get(`${url}/doc`);
    expect(after.headers['cache-status']).toContain('fwd=miss');
  });

  it('a successful unsafe request also invalidates its Location on the same origin (4.4)', async () => {
    const { url } = await start((ctx, hit) => {
      if (ctx.req.method === 'POST') {
        ctx.res.writeHead(201, ['location', '/items/7']);
        ctx.res.end();
        return;
      }
      origin(() => ({ 'cache-control': 'max-age=60' }))(ctx, hit);
    });
    await get(`${url}/items/7`);
    expect((await get(`${url}/items/7`)).headers['cache-status']).toBe('trellis; hit');
    await (await request(`${url}/items`, { method: 'POST', body: '{}' })).body.text();
    let after = await get(`${url}/items/7`);
    const deadline = Date.now() + 5000;
    while (after.headers['cache-status'] === 'trellis; hit' && Date.now() < deadline)
      after = await get(`${url}/items/7`);
    expect(after.headers['cache-status']).toContain('fwd=miss');
  });

  it('obeys CDN-Cache-Control over Cache-Control and passes Cache-Control on (RFC 9213)', async () => {
    const { url, seen } = await start(
      origin(() => ({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60' })),
    );
    await get(url);
    const hit = await get(url);
    expect(hit.headers['cache-status']).toBe('trellis; hit');
    expect(hit.headers['cache-control']).toBe('no-store');
    expect(seen.length).toBe(1);
    await srv!.close();
    const second = await start(
      origin(() => ({ 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' })),
    );
    await get(second.url);
    await get(second.url);
    expect(second.seen.length).toBe(2);
  });

  it('Authorization: public/s-maxage/must-revalidate answers are stored and reused; others are not, and say why (3.5, RFC 9211)', async () => {
    const auth = { authorization: 'Bearer user-1' };
    for (const cc of ['public, max-age=60', 's-maxage=60', 'max-age=60, must-revalidate']) {
      const { url, seen, close } = await start(origin(() => ({ 'cache-control': cc })));
      await get(url, auth);
      const hit = await get(url, { authorization: 'Bearer user-2' });
      expect(hit.headers['cache-status'], cc).toBe('trellis; hit');
      expect(seen.length, cc).toBe(1);
      await srv!.close();
      await close?.();
    }
    const { url, seen } = await start(origin(() => ({ 'cache-control': 'max-age=60' })));
    const first = await get(url, auth);
    expect(first.headers['cache-status']).toBe(
      'trellis; fwd=miss; fwd-status=200; detail="not stored: authorization"',
    );
    await get(url, auth);
    expect(seen.length).toBe(2);
    // An entry stored for anonymous requests is not handed to a request with credentials.
    await get(url);
    expect((await get(url)).headers['cache-status']).toBe('trellis; hit');
    expect((await get(url, auth)).headers['cache-status']).toContain('fwd=miss');
  });

  it('says why an answer was not stored (RFC 9211 detail)', async () => {
    const { url } = await start(origin(() => ({ 'cache-control': 'private, max-age=60' })));
    expect((await get(url)).headers['cache-status']).toBe(
      'trellis; fwd=miss; fwd-status=200; detail="not stored: private"',
    );
  });

  it('gives a response with only Last-Modified a heuristic lifetime: 10% of its age, capped (4.2.2)', async () => {
    const { url, seen } = await start(
      origin(() => ({ date: at(Date.now()), 'last-modified': at(Date.now() - 1000_000) })),
      { heuristicMaxAge: '50s' },
    );
    await get(url);
    expect((await get(url)).headers['cache-status']).toBe('trellis; hit');
    expect(seen.length).toBe(1);
  });

  it('answers a Range from a stored full response: 206, 416, and the whole body when If-Range differs (3.3)', async () => {
    const { url, seen } = await start(
      origin(
        () => ({ 'cache-control': 'max-age=60', etag: '"v1"' }),
        () => '0123456789',
      ),
    );
    await get(url);
    const part = await get(url, { range: 'bytes=2-5' });
    expect(part.status).toBe(206);
    expect(part.body).toBe('2345');
    expect(part.headers['content-range']).toBe('bytes 2-5/10');
    expect(part.headers['content-length']).toBe('4');
    expect((await get(url, { range: 'bytes=-3' })).body).toBe('789');
    const outside = await get(url, { range: 'bytes=20-' });
    expect(outside.status).toBe(416);
    expect(outside.headers['content-range']).toBe('bytes */10');
    const changed = await get(url, { range: 'bytes=2-5', 'if-range': '"v0"' });
    expect(changed.status).toBe(200);
    expect(changed.body).toBe('0123456789');
    expect((await get(url, { range: 'bytes=2-5', 'if-range': '"v1"' })).status).toBe(206);
    expect(seen.length).toBe(1);
  });

  it('honours request max-age, min-fresh, no-cache, max-stale and only-if-cached (5.2.1)', async () => {
    const { url, seen } = await start(origin(() => ({ 'cache-control': 'max-age=2' })));
    const cc = (v: string) => ({ 'cache-control': v });
    expect((await get(url, cc('only-if-cached'))).status).toBe(504);
    expect(seen.length).toBe(0);
    await get(url);
    expect((await get(url, cc('only-if-cached'))).headers['cache-status']).toBe('trellis; hit');
    expect((await get(url, cc('max-age=60'))).headers['cache-status']).toBe('trellis; hit');
    // Each of these goes to the origin, though the entry is fresh.
    for (const v of ['max-age=0', 'no-cache', 'min-fresh=60']) {
      const before = seen.length;
      const r = await get(url, cc(v));
      expect(r.headers['cache-status'], v).toContain('fwd=');
      expect(seen.length, v).toBe(before + 1);
    }
    // Wait (with a deadline) until the entry is stale, then max-stale accepts it.
    const deadline = Date.now() + 10_000;
    let plain = await get(url, cc('only-if-cached'));
    while (plain.status !== 504 && Date.now() < deadline) plain = await get(url, cc('only-if-cached'));
    expect(plain.status).toBe(504);
    const before = seen.length;
    const stale = await get(url, cc('max-stale'));
    expect(stale.headers['cache-status']).toBe('trellis; hit; detail=max-stale');
    expect(seen.length).toBe(before);
  });
});
