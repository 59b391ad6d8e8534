import { createServer, type OutgoingHttpHeaders, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onResponseHead } from './intercept.js';

// Each request's path picks how the handler writes its head; the interceptor adds a header and
// records what it saw.
const seen: OutgoingHttpHeaders[] = [];
const write: Record<string, (res: ServerResponse) => void> = {
  '/flat': (res) => res.writeHead(201, ['Set-Cookie', 'a=1', 'X-One', '1', 'set-cookie', 'b=2']),
  '/nested': (res) =>
    res.writeHead(201, [
      ['Set-Cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['X-One', '1'],
    ] as never),
  '/object': (res) => res.writeHead(201, 'Made', { 'x-one': '1', 'set-cookie': ['a=1', 'b=2'] }),
  '/implicit': (res) => {
    res.statusCode = 201;
    res.setHeader('x-one', '1');
    res.setHeader('set-cookie', ['a=1', 'b=2']);
  },
};
const server = createServer((req, res) => {
  res.setHeader('x-before', 'kept');
  onResponseHead(res, (r) => {
    seen.push(Object.fromEntries(r.getHeaderNames().map((n) => [n, r.getHeader(n)])));
    r.setHeader('x-added', String(r.statusCode));
  });
  write[req.url!]!(res);
  res.end('ok');
});

function get(
  path: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    request({ port, path, host: '127.0.0.1' }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    })
      .on('error', reject)
      .end();
  });
}

beforeAll(() => new Promise<void>((r) => server.listen(0, '127.0.0.1', r)));
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('onResponseHead', () => {
  for (const path of Object.keys(write)) {
    it(`sees every header before the head goes out (${path})`, async () => {
      seen.length = 0;
      const r = await get(path);
      expect(r.status).toBe(201);
      expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
      expect(r.headers['x-one']).toBe('1');
      expect(r.headers['x-before']).toBe('kept');
      expect(r.headers['x-added']).toBe('201');
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ 'x-one': '1', 'x-before': 'kept', 'set-cookie': ['a=1', 'b=2'] });
    });
  }
});

describe('sealResponseHeaders', () => {
  it('keeps sealed headers against every later head edit, in object and flat form', async () => {
    const { sealResponseHeaders } = await import('./intercept.js');
    const srv = createServer((req, res) => {
      onResponseHead(res, (r) => {
        r.setHeader('cache-control', 'private, max-age=30');
        r.setHeader('expires', 'Thu, 01 Jan 2037 00:00:00 GMT');
      });
      sealResponseHeaders(res, { 'cache-control': 'no-store', expires: undefined });
      if (req.url === '/flat') res.writeHead(200, ['content-length', '0']);
      else res.writeHead(200, { 'content-length': '0' });
      res.end();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    try {
      for (const path of ['/object', '/flat']) {
        const res = await fetch(`http://127.0.0.1:${port}${path}`);
        expect(res.headers.get('cache-control'), path).toBe('no-store');
        expect(res.headers.get('expires'), path).toBeNull();
      }
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });
});
