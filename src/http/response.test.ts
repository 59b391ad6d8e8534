import { createServer, type OutgoingHttpHeaders, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGunzip, createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ResponseFilter, sealResponseHeaders, TrellisResponse } from './response.js';

// Each request's path picks how the handler writes its answer; the filters the test registers
// for that path see (and rewrite) it on the way out.
const seen: OutgoingHttpHeaders[] = [];
const recordHead: ResponseFilter = {
  head(r) {
    seen.push(r.getHeaders());
    r.setHeader('x-added', String(r.statusCode));
    return undefined;
  },
};
/** Upper-cases every body chunk and counts them (a body rewrite that streams). */
function upperCase(counter: { chunks: number }): ResponseFilter {
  return {
    head(r) {
      r.removeHeader('content-length');
      return undefined;
    },
    write(chunk, out) {
      counter.chunks++;
      return out.write(chunk.toString('latin1').toUpperCase());
    },
  };
}
const upper = { chunks: 0 };

const write: Record<string, (res: ServerResponse) => void> = {
  '/flat': (res) => res.writeHead(201, ['Set-Cookie', 'a=1', 'X-One', '1', 'set-cookie', 'b=2']).end('ok'),
  '/nested': (res) =>
    res
      .writeHead(201, [
        ['Set-Cookie', 'a=1'],
        ['set-cookie', 'b=2'],
        ['X-One', '1'],
      ] as never)
      .end('ok'),
  '/object': (res) => res.writeHead(201, 'Made', { 'x-one': '1', 'set-cookie': ['a=1', 'b=2'] }).end('ok'),
  '/implicit': (res) => {
    res.statusCode = 201;
    res.setHeader('x-one', '1');
    res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.end('ok');
  },
  '/stream': (res) => {
    res.writeHead(200, ['content-type', 'text/plain']);
    let i = 0;
    const next = () => {
      if (i === 3) return res.end();
      res.write(`part${i++} `);
      setImmediate(next);
    };
    next();
  },
  '/chunked-implicit': (res) => {
    res.write('one ');
    res.write(Buffer.from('two '));
    res.end('three');
  },
  '/head': (res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' });
    res.end('hello');
  },
  '/not-modified': (res) => {
    res.writeHead(304, ['etag', '"v1"', 'set-cookie', 'a=1', 'set-cookie', 'b=2']);
    res.end();
  },
  '/gzip': (res) => res.writeHead(200, ['content-type', 'text/plain']).end('squeeze me'),
  '/hold': (res) => res.writeHead(503, ['content-type', 'text/plain']).end('upstream failed'),
  '/sealed/object': (res) => {
    sealResponseHeaders(res, { 'cache-control': 'no-store', expires: undefined });
    res.writeHead(200, { 'content-length': '0' }).end();
  },
  '/sealed/flat': (res) => {
    sealResponseHeaders(res, { 'cache-control': 'no-store', expires: undefined });
    res.writeHead(200, ['content-length', '0']).end();
  },
};

/** A route's headers middleware giving every answer a lifetime (what a sealed head must resist). */
const routeLifetime: ResponseFilter = {
  head(r) {
    r.setHeader('cache-control', 'private, max-age=30');
    r.setHeader('expires', 'Thu, 01 Jan 2037 00:00:00 GMT');
    return undefined;
  },
};

const filtersFor: Record<string, () => ResponseFilter[]> = {
  '/stream': () => [recordHead, upperCase(upper)],
  '/chunked-implicit': () => [recordHead, upperCase(upper)],
  '/gzip': () => [gzip()],
  '/hold': () => [recordHead, replaceFailure()],
  '/sealed/object': () => [recordHead, routeLifetime],
  '/sealed/flat': () => [recordHead, routeLifetime],
};

/** A filter that compresses, through zlib, as a compress middleware would. */
function gzip(): ResponseFilter {
  const z = createGzip();
  return {
    head(r, out) {
      r.setHeader('content-encoding', 'gzip');
      r.removeHeader('content-length');
      z.on('data', (c: Buffer) => out.write(c));
      return undefined;
    },
    write: (chunk) => z.write(chunk),
    end(out) {
      z.once('end', () => out.end());
      z.end();
    },
  };
}

/** A filter that holds a 5xx back and answers with its own 200 (a cache's stale-if-error). */
function replaceFailure(): ResponseFilter {
  let held = false;
  return {
    head(r) {
      if (r.statusCode < 500) return undefined;
      held = true;
      return 'hold';
    },
    write: (chunk, out) => (held ? true : out.write(chunk)),
    end(out) {
      if (!held) return out.end();
      out.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' });
      out.end('stale');
    },
  };
}

const server = createServer({ ServerResponse: TrellisResponse as typeof ServerResponse }, (req, res) => {
  const path = req.url!;
  res.setHeader('x-before', 'kept');
  const trellis = res as TrellisResponse;
  for (const f of filtersFor[path]?.() ?? [recordHead]) trellis.addFilter(f);
  write[path]!(res);
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function call(path: string, method = 'GET'): Promise<Answer> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    request({ port, path, method, host: '127.0.0.1' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    })
      .on('error', reject)
      .end();
  });
}

beforeAll(() => new Promise<void>((r) => server.listen(0, '127.0.0.1', r)));
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('the response phase: head filters', () => {
  for (const path of ['/flat', '/nested', '/object', '/implicit']) {
    it(`sees every header before the head goes out (${path})`, async () => {
      seen.length = 0;
      const r = await call(path);
      expect(r.status).toBe(201);
      expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
      expect(r.headers['x-one']).toBe('1');
      expect(r.headers['x-before']).toBe('kept');
      expect(r.headers['x-added']).toBe('201');
      expect(r.body.toString()).toBe('ok');
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ 'x-one': '1', 'x-before': 'kept', 'set-cookie': ['a=1', 'b=2'] });
    });
  }

  it('keeps every Set-Cookie of a 304 and sends no body or length', async () => {
    seen.length = 0;
    const r = await call('/not-modified');
    expect(r.status).toBe(304);
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers.etag).toBe('"v1"');
    expect(r.headers['x-added']).toBe('304');
    expect(r.headers['content-length']).toBeUndefined();
    expect(r.body.length).toBe(0);
  });

  it('answers HEAD with the head the filter saw and no body', async () => {
    seen.length = 0;
    const r = await call('/head', 'HEAD');
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe('5');
    expect(r.headers['x-added']).toBe('200');
    expect(r.body.length).toBe(0);
    expect(seen[0]).toMatchObject({ 'content-length': '5' });
  });
});

describe('the response phase: body filters', () => {
  it('rewrites a streamed body chunk by chunk', async () => {
    upper.chunks = 0;
    const r = await call('/stream');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('PART0 PART1 PART2 ');
    expect(r.headers['x-added']).toBe('200');
    expect(upper.chunks).toBe(3);
  });

  it('rewrites a chunked body written without a head (implicit head, chunked transfer)', async () => {
    upper.chunks = 0;
    const r = await call('/chunked-implicit');
    expect(r.status).toBe(200);
    expect(r.headers['transfer-encoding']).toBe('chunked');
    expect(r.body.toString()).toBe('ONE TWO THREE');
    expect(r.headers['x-before']).toBe('kept');
    expect(upper.chunks).toBe(3);
  });

  it('streams the body through a transform (gzip) and ends after it flushed', async () => {
    const r = await call('/gzip');
    expect(r.headers['content-encoding']).toBe('gzip');
    const plain = await new Promise<string>((resolve, reject) => {
      const g = createGunzip();
      const out: Buffer[] = [];
      g.on('data', (c: Buffer) => out.push(c));
      g.on('end', () => resolve(Buffer.concat(out).toString()));
      g.on('error', reject);
      g.end(r.body);
    });
    expect(plain).toBe('squeeze me');
  });

  it('lets a filter hold the answer back and send its own through the outer filters', async () => {
    seen.length = 0;
    const r = await call('/hold');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('stale');
    // The outer filter saw only the replacement, not the held 503.
    expect(seen).toHaveLength(1);
    expect(r.headers['x-added']).toBe('200');
  });
});

describe('the response phase: sealed headers', () => {
  it('keeps sealed headers against every head filter edit, in object and flat form', async () => {
    for (const path of ['/sealed/object', '/sealed/flat']) {
      seen.length = 0;
      const r = await call(path);
      expect(r.headers['cache-control'], path).toBe('no-store');
      expect(r.headers.expires, path).toBeUndefined();
      // A filter outside the one that edits (a cache deciding what to store) sees the sealed head.
      expect(seen[0]?.['cache-control'], path).toBe('no-store');
      expect(seen[0]?.expires, path).toBeUndefined();
    }
  });
});
