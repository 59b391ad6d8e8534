import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Handler } from '../../http/types.js';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { compressMiddleware } from './index.js';
import { negotiate } from './negotiate.js';

let srv: ChainServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

const json = JSON.stringify(
  Array.from({ length: 300 }, (_, i) => ({ id: i, name: `item ${i}`, price: i * 3 })),
);

async function start(handler: Handler, options: Record<string, unknown> = {}) {
  const mw = await createMiddleware(compressMiddleware, options);
  srv = await serveChain([mw], handler);
  return srv.url;
}

async function get(url: string, ae: string | undefined, method: 'GET' | 'HEAD' = 'GET') {
  const r = await request(url, { method, headers: ae === undefined ? {} : { 'accept-encoding': ae } });
  const raw = Buffer.from(await r.body.arrayBuffer());
  const enc = r.headers['content-encoding'];
  const body = enc === 'br' ? brotliDecompressSync(raw) : enc === 'gzip' ? gunzipSync(raw) : raw;
  return { r, raw, body: body.toString() };
}

/** Answers like the proxy does: a raw header array, then the body. */
const proxyLike =
  (status: number, headers: string[], body: string | Buffer | undefined): Handler =>
  (ctx) => {
    ctx.res.writeHead(status, headers);
    ctx.res.end(body);
  };

describe('negotiate', () => {
  it('follows q-values, server order on ties, q=0 and *', () => {
    expect(negotiate('gzip, deflate, br', ['br', 'gzip'])).toBe('br');
    expect(negotiate('br;q=0.5, gzip', ['br', 'gzip'])).toBe('gzip');
    expect(negotiate('br;q=0, *', ['br', 'gzip'])).toBe('gzip');
    expect(negotiate('*;q=0', ['br', 'gzip'])).toBeUndefined();
    expect(negotiate('identity', ['br', 'gzip'])).toBeUndefined();
    expect(negotiate('GZIP;Q=0.8', ['br', 'gzip'])).toBe('gzip');
  });

  it('survives abuse: bad q values count as 0, repeats cannot upgrade, huge headers are cut', () => {
    expect(negotiate('br;q=abc, gzip;q=2, deflate', ['br', 'gzip'])).toBeUndefined();
    expect(negotiate('br;q=0, br;q=1', ['br', 'gzip'])).toBeUndefined();
    expect(negotiate(`${'x;q=0.1,'.repeat(10_000)}gzip`, ['br', 'gzip'])).toBeUndefined();
    expect(negotiate(';;;,,,;q=,', ['br', 'gzip'])).toBeUndefined();
  });
});

describe('compress', () => {
  it('brotli or gzip by Accept-Encoding, with Vary and without Content-Length', async () => {
    const url = await start(
      proxyLike(
        200,
        ['Content-Type', 'application/json', 'Content-Length', String(json.length), 'ETag', '"v1"'],
        json,
      ),
    );
    const br = await get(url, 'gzip, br');
    expect(br.r.headers['content-encoding']).toBe('br');
    expect(br.r.headers['content-length']).toBeUndefined();
    expect(br.r.headers.vary).toBe('Accept-Encoding');
    expect(br.r.headers.etag).toBe('W/"v1"');
    expect(br.body).toBe(json);
    expect(br.raw.length).toBeLessThan(json.length / 3);
    const gz = await get(url, 'br;q=0.1, gzip;q=0.9');
    expect(gz.r.headers['content-encoding']).toBe('gzip');
    expect(gz.body).toBe(json);
    const plain = await get(url, undefined);
    expect(plain.r.headers['content-encoding']).toBeUndefined();
    expect(plain.r.headers.vary).toBe('Accept-Encoding');
    expect(plain.body).toBe(json);
  });

  it('leaves small, incompressible and already-encoded bodies alone (never double-compresses)', async () => {
    const small = await start((ctx) => {
      ctx.res.setHeader('content-type', 'application/json');
      ctx.res.end('{"ok":true}');
    });
    expect((await get(small, 'br')).r.headers['content-encoding']).toBeUndefined();
    await srv!.close();
    const png = await start(proxyLike(200, ['content-type', 'image/png'], Buffer.alloc(5000, 1)));
    const p = await get(png, 'br');
    expect(p.r.headers['content-encoding']).toBeUndefined();
    expect(p.r.headers.vary).toBeUndefined();
    await srv!.close();
    const pre = gzipSync(json);
    const encoded = await start(
      proxyLike(200, ['content-type', 'application/json', 'content-encoding', 'gzip'], pre),
    );
    const e = await get(encoded, 'br, gzip');
    expect(e.r.headers['content-encoding']).toBe('gzip');
    expect(e.raw.equals(pre)).toBe(true);
  });

  it('sends no body for HEAD, 204 and 304', async () => {
    const url = await start((ctx) => {
      const status = Number(ctx.path.slice(1)) || 200;
      ctx.res.writeHead(status, { 'content-type': 'text/plain', etag: '"a"' });
      ctx.res.end(status === 200 ? 'x'.repeat(5000) : undefined);
    });
    for (const [path, method] of [
      ['/200', 'HEAD'],
      ['/204', 'GET'],
      ['/304', 'GET'],
    ] as const) {
      const { r, raw } = await get(`${url}${path}`, 'br', method);
      expect(r.headers['content-encoding'], path).toBeUndefined();
      expect(raw.length, path).toBe(0);
    }
  });

  it('streams a large body written in chunks, with backpressure', async () => {
    const line = `${JSON.stringify({ t: 'x'.repeat(100) })}\n`;
    const url = await start(async (ctx) => {
      ctx.res.setHeader('content-type', 'application/x-ndjson');
      for (let i = 0; i < 20_000; i++) {
        if (!ctx.res.write(line)) await new Promise((r) => ctx.res.once('drain', r));
      }
      ctx.res.end();
    });
    const { r, body } = await get(url, 'gzip');
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(r.headers['transfer-encoding']).toBe('chunked');
    expect(body.length).toBe(line.length * 20_000);
  });
});
