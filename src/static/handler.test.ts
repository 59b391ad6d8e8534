import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway } from '../gateway/gateway.js';
import { compressFolder } from './compress.js';
import { rawGet } from './testing/raw.js';

const BIG = 3 * 1024 * 1024;

async function until<T>(check: () => Promise<T | undefined>, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function site(root: string): void {
  mkdirSync(join(root, 'assets'), { recursive: true });
  mkdirSync(join(root, 'docs'), { recursive: true });
  mkdirSync(join(root, 'empty'), { recursive: true });
  writeFileSync(join(root, 'index.html'), '<!doctype html><p>home</p>');
  writeFileSync(join(root, 'docs', 'index.html'), '<p>docs</p>');
  writeFileSync(join(root, 'about.html'), '<p>about</p>');
  writeFileSync(join(root, 'assets', 'app.1a2b3c4d.js'), 'console.log("app");\n'.repeat(200));
  writeFileSync(join(root, 'digits.txt'), '0123456789abcdefghij');
  writeFileSync(join(root, 'big.bin'), Buffer.alloc(BIG, 7));
}

describe('static: handler over a folder', () => {
  let dir: string;
  let gw: Gateway;
  let url: string;
  let port: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-static-'));
    site(join(dir, 'a'));
    await compressFolder(join(dir, 'a'));
    // A replica: the same bytes, other mtimes.
    site(join(dir, 'b'));
    utimesSync(join(dir, 'b', 'about.html'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    mkdirSync(join(dir, 'c'));
    writeFileSync(join(dir, 'c', 'page.html'), '<p>page</p>');
    writeFileSync(join(dir, 'c', 'fallback.html'), '<p>fallback</p>');
    gw = await startGateway({
      text: `listen: { port: 0, host: 127.0.0.1 }
admin: { enabled: false }
routes:
  - match: { pathPrefix: /replica }
    static: { root: ${JSON.stringify(join(dir, 'b'))}, stripPrefix: /replica }
  - match: { pathPrefix: /try }
    static: { root: ${JSON.stringify(join(dir, 'c'))}, stripPrefix: /try, try: ['{path}', '{path}.html', /fallback.html] }
  - match: { path: /* }
    static:
      root: ${JSON.stringify(join(dir, 'a'))}
      spa: true
      spaExclude: [/api]
      revalidate: 50ms
      memoryCache: { maxFileSize: 64kb }
      cacheControl: [{ match: 'docs/**', value: 'public, max-age=60' }]
`,
    });
    port = gw.ports.main!;
    url = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await gw.stop(1_000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers a file with a content-hash ETag, Last-Modified, type with charset and cache rules', async () => {
    const res = await fetch(`${url}/about.html`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('<p>about</p>');
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('etag')).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
    expect(res.headers.get('last-modified')).toBeTruthy();
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const asset = await fetch(`${url}/assets/app.1a2b3c4d.js`, {
      headers: { 'accept-encoding': 'identity' },
    });
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const docs = await fetch(`${url}/docs/`);
    expect(docs.headers.get('cache-control')).toBe('public, max-age=60');
  });

  it('gives identical bytes the same ETag on another replica, whatever the mtime', async () => {
    const a = await fetch(`${url}/about.html`);
    const b = await fetch(`${url}/replica/about.html`);
    // The prefix is stripped on a segment boundary only: /replicaabout.html is not /about.html.
    expect((await fetch(`${url}/replicaabout.html`)).status).toBe(404);
    expect(await b.text()).toBe('<p>about</p>');
    expect(b.headers.get('etag')).toBe(a.headers.get('etag'));
    expect(b.headers.get('last-modified')).not.toBe(a.headers.get('last-modified'));
  });

  it('answers 304 to If-None-Match and If-Modified-Since', async () => {
    const first = await fetch(`${url}/about.html`);
    const etag = first.headers.get('etag')!;
    const inm = await fetch(`${url}/about.html`, { headers: { 'if-none-match': `"x", W/${etag}` } });
    expect(inm.status).toBe(304);
    expect(inm.headers.get('etag')).toBe(etag);
    const ims = await fetch(`${url}/about.html`, {
      headers: { 'if-modified-since': first.headers.get('last-modified')! },
    });
    expect(ims.status).toBe(304);
    // If-None-Match wins over If-Modified-Since.
    const both = await fetch(`${url}/about.html`, {
      headers: { 'if-none-match': '"other"', 'if-modified-since': first.headers.get('last-modified')! },
    });
    expect(both.status).toBe(200);
  });

  it('serves single and multiple ranges, honours If-Range, answers 416', async () => {
    const one = await fetch(`${url}/digits.txt`, { headers: { range: 'bytes=2-5' } });
    expect(one.status).toBe(206);
    expect(one.headers.get('content-range')).toBe('bytes 2-5/20');
    expect(await one.text()).toBe('2345');
    const suffix = await fetch(`${url}/digits.txt`, { headers: { range: 'bytes=-3' } });
    expect(await suffix.text()).toBe('hij');
    const multi = await fetch(`${url}/digits.txt`, { headers: { range: 'bytes=0-1,10-12' } });
    expect(multi.status).toBe(206);
    const type = multi.headers.get('content-type')!;
    expect(type).toMatch(/^multipart\/byteranges; boundary=/);
    const text = await multi.text();
    expect(text).toContain('content-range: bytes 0-1/20\r\n\r\n01\r\n');
    expect(text).toContain('content-range: bytes 10-12/20\r\n\r\nabc\r\n');
    expect(text.endsWith(`--${type.split('boundary=')[1]}--\r\n`)).toBe(true);
    const stale = await fetch(`${url}/digits.txt`, { headers: { range: 'bytes=0-1', 'if-range': '"old"' } });
    expect(stale.status).toBe(200);
    expect(await stale.text()).toBe('0123456789abcdefghij');
    const etag = stale.headers.get('etag')!;
    const fresh = await fetch(`${url}/digits.txt`, { headers: { range: 'bytes=0-1', 'if-range': etag } });
    expect(fresh.status).toBe(206);
    const bad = await fetch(`${url}/digits.txt`, { headers: { range: 'bytes=50-60' } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get('content-range')).toBe('bytes */20');
    expect(((await bad.json()) as { code: string }).code).toBe('TRELLIS_E_STATIC_RANGE_NOT_SATISFIABLE');
  });

  it('refuses 1,000 ranges cheaply', async () => {
    const header = `bytes=${Array.from({ length: 1000 }, (_, i) => `${i}-${i}`).join(',')}`;
    const started = performance.now();
    const res = await fetch(`${url}/big.bin`, { headers: { range: header } });
    expect(res.status).toBe(416);
    expect(((await res.json()) as { code: string }).code).toBe('TRELLIS_E_STATIC_TOO_MANY_RANGES');
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('serves a valid precompressed variant with Vary on 200, 206 and 304', async () => {
    const br = await fetch(`${url}/assets/app.1a2b3c4d.js`, { headers: { 'accept-encoding': 'gzip, br' } });
    expect(br.headers.get('content-encoding')).toBe('br');
    expect(br.headers.get('vary')).toBe('Accept-Encoding');
    const raw = await rawGet(port, '/assets/app.1a2b3c4d.js', 'accept-encoding: br\r\n');
    expect(brotliDecompressSync(raw.body).toString()).toBe('console.log("app");\n'.repeat(200));
    const gz = await rawGet(port, '/assets/app.1a2b3c4d.js', 'accept-encoding: gzip;q=1, br;q=0\r\n');
    expect(gz.headers['content-encoding']).toBe('gzip');
    const plain = await rawGet(port, '/assets/app.1a2b3c4d.js');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.vary).toBe('Accept-Encoding');
    expect(plain.headers.etag).not.toBe(raw.headers.etag);
    const notModified = await rawGet(
      port,
      '/assets/app.1a2b3c4d.js',
      `if-none-match: ${plain.headers.etag}\r\n`,
    );
    expect(notModified.status).toBe(304);
    expect(notModified.headers.vary).toBe('Accept-Encoding');
    const partial = await rawGet(port, '/assets/app.1a2b3c4d.js', 'range: bytes=0-3\r\n');
    expect(partial.status).toBe(206);
    expect(partial.headers.vary).toBe('Accept-Encoding');
  });

  it('never serves a variant made from other bytes than the source has now', async () => {
    const root = join(dir, 'a');
    await writeFile(join(root, 'stale.js'), 'let current = 1;\n'.repeat(100));
    await writeFile(join(root, 'stale.js.br'), brotliCompressSync('let old = 0;\n'.repeat(100)));
    await writeFile(join(root, 'stale.js.gz'), gzipSync('let old = 0;\n'.repeat(100)));
    // Variants newer than the source but not in the compress record are trusted by mtime...
    const trusted = await rawGet(port, '/stale.js', 'accept-encoding: br\r\n');
    expect(trusted.headers['content-encoding']).toBe('br');
    // ...and once `compress` has recorded the source's hash, only matching ones are served.
    await compressFolder(root);
    await writeFile(join(root, 'stale.js'), 'let changed = 2;\n'.repeat(100));
    const reply = await until(async () => {
      const r = await rawGet(port, '/stale.js', 'accept-encoding: br, gzip\r\n');
      return r.body.toString().startsWith('let changed') ? r : undefined;
    }, 'the changed source');
    expect(reply.headers['content-encoding']).toBeUndefined();
    expect(reply.headers.vary).toBe('Accept-Encoding');
  });

  it('picks up a changed file without a restart', async () => {
    const file = join(dir, 'a', 'changing.txt');
    await writeFile(file, 'one');
    const first = await fetch(`${url}/changing.txt`);
    expect(await first.text()).toBe('one');
    await writeFile(file, 'two');
    const text = await until(async () => {
      const t = await (await fetch(`${url}/changing.txt`)).text();
      return t === 'two' ? t : undefined;
    }, 'the new content');
    expect(text).toBe('two');
    await rm(file);
    await until(
      async () => ((await fetch(`${url}/changing.txt`)).status === 404 ? true : undefined),
      'a 404',
    );
  });

  it('answers GET and HEAD only, with Allow on 405', async () => {
    const post = await fetch(`${url}/about.html`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const head = await fetch(`${url}/about.html`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('12');
  });

  it('serves index files, redirects a folder to its slash without a body, lists nothing', async () => {
    expect(await (await fetch(`${url}/docs/`)).text()).toBe('<p>docs</p>');
    const redirect = await rawGet(port, '/docs?x=<script>');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe('/docs/?x=<script>');
    expect(redirect.body.length).toBe(0);
    expect(redirect.headers['content-type']).toBeUndefined();
    const empty = await fetch(`${url}/empty/`);
    expect(empty.status).toBe(404);
  });

  it('falls back to index.html for SPA routes, never for the API prefix or paths with an extension', async () => {
    const route = await fetch(`${url}/products/42`);
    expect(route.status).toBe(200);
    expect(await route.text()).toBe('<!doctype html><p>home</p>');
    expect((await fetch(`${url}/api/products`)).status).toBe(404);
    expect((await fetch(`${url}/missing.png`)).status).toBe(404);
  });

  it('tries candidates in order like try_files', async () => {
    expect(await (await fetch(`${url}/try/page`)).text()).toBe('<p>page</p>');
    expect(await (await fetch(`${url}/try/nothing`)).text()).toBe('<p>fallback</p>');
  });

  it('streams a large file and ends cleanly when it is deleted mid-stream', async () => {
    const whole = await fetch(`${url}/big.bin`);
    expect(whole.headers.get('content-length')).toBe(String(BIG));
    expect((await whole.arrayBuffer()).byteLength).toBe(BIG);
    const range = await fetch(`${url}/big.bin`, { headers: { range: `bytes=${BIG - 10}-` } });
    expect((await range.arrayBuffer()).byteLength).toBe(10);

    const file = join(dir, 'a', 'doomed.bin');
    await writeFile(file, Buffer.alloc(BIG, 1));
    const outcome = await new Promise<{ bytes: number; error?: string }>((resolve) => {
      const req = request(`${url}/doomed.bin`, (res) => {
        let bytes = 0;
        res.once('data', () => {
          void rm(file);
          res.pause();
          setImmediate(() => res.resume());
        });
        res.on('data', (c: Buffer) => {
          bytes += c.length;
        });
        res.on('end', () => resolve({ bytes }));
        res.on('error', (err) => resolve({ bytes, error: err.message }));
      });
      req.on('error', (err) => resolve({ bytes: 0, error: err.message }));
      req.end();
    });
    // Either the whole file (its descriptor stays readable) or a cut connection: never a short 200.
    if (outcome.error === undefined) expect(outcome.bytes).toBe(BIG);
    // And the server goes on serving.
    expect((await fetch(`${url}/about.html`)).status).toBe(200);
    await until(async () => ((await fetch(`${url}/doomed.bin`)).status === 404 ? true : undefined), 'a 404');
  });
});
