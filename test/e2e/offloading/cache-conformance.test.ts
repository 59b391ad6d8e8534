import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  type Origin,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
} from '../support/index.js';

// The shared cache through the real gateway and proxy: a few RFC 9111 points a client sees
// (the full tables are the unit tests beside src/middlewares/cache/policy.ts).
describe('trellis gateway: the cache middleware against RFC 9111', () => {
  let dir: TempDir;
  let origin: Origin;
  let gateway: GatewayProcess;
  const originDate = new Date(Date.now() - 30_000).toUTCString();

  beforeAll(async () => {
    dir = tempDir();
    origin = await startOrigin('origin', (req, res) => {
      const headers: Record<string, string> = { 'content-type': 'text/plain' };
      if (req.url.startsWith('/dated')) {
        headers.date = originDate;
        headers.expires = new Date(Date.now() + 30_000).toUTCString();
      } else if (req.url.startsWith('/bad-expires')) headers.expires = 'Thu, 01 Jan 2037 00:00:00 UTC';
      else if (req.url.startsWith('/listed-age'))
        Object.assign(headers, { 'cache-control': 'max-age=3600', age: '7200, 0' });
      else if (req.url.startsWith('/public')) headers['cache-control'] = 'public, max-age=60';
      else if (req.url.startsWith('/cdn'))
        Object.assign(headers, { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60' });
      else headers['cache-control'] = 'max-age=60';
      res.writeHead(200, headers);
      res.end(req.method === 'GET' ? `0123456789 ${req.url}` : '');
    });
    gateway = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
services:
  origin: { upstreams: ['${origin.url}'], retry: { attempts: 1 } }
middlewares:
  edge: { cache: {} }
routes:
  - match: { pathPrefix: / }
    middlewares: [edge]
    proxy: { service: origin }
`,
    );
  });
  afterAll(async () => {
    await gateway?.stop();
    await origin?.close();
    dir?.cleanup();
  });

  const get = async (path: string, headers: Record<string, string> = {}, method = 'GET') => {
    const res = await fetch(`${gateway.url}${path}`, { headers, method });
    return { status: res.status, headers: res.headers, body: await res.text() };
  };
  const originSaw = (path: string) => origin.requests.filter((r) => r.url === path).length;

  it('keeps the origin Date on hits and counts the age from it', async () => {
    await get('/dated');
    const hit = await get('/dated');
    expect(hit.headers.get('cache-status')).toBe('trellis; hit');
    expect(hit.headers.get('date')).toBe(originDate);
    expect(Number(hit.headers.get('age'))).toBeGreaterThanOrEqual(29);
  });

  it('treats an invalid Expires as expired and a listed Age by its first value', async () => {
    for (const path of ['/bad-expires', '/listed-age']) {
      await get(path);
      await get(path);
      expect(originSaw(path), path).toBe(2);
    }
  });

  it('reuses public answers for requests with Authorization, and says why others are not stored', async () => {
    await get('/public', { authorization: 'Bearer a' });
    expect((await get('/public', { authorization: 'Bearer b' })).headers.get('cache-status')).toBe(
      'trellis; hit',
    );
    const private_ = await get('/private', { authorization: 'Bearer a' });
    expect(private_.headers.get('cache-status')).toMatch(/detail="not stored: authorization"/);
  });

  it('obeys CDN-Cache-Control and passes Cache-Control on', async () => {
    await get('/cdn');
    const hit = await get('/cdn');
    expect(hit.headers.get('cache-status')).toBe('trellis; hit');
    expect(hit.headers.get('cache-control')).toBe('no-store');
  });

  it('answers a Range from the stored response, and only-if-cached without going upstream', async () => {
    await get('/ranged');
    const part = await get('/ranged', { range: 'bytes=0-3' });
    expect(part.status).toBe(206);
    expect(part.body).toBe('0123');
    expect((await get('/never', { 'cache-control': 'only-if-cached' })).status).toBe(504);
    expect(originSaw('/never')).toBe(0);
  });

  it('invalidates the URL after a successful extension method', async () => {
    await get('/doc');
    expect((await get('/doc')).headers.get('cache-status')).toBe('trellis; hit');
    await get('/doc', {}, 'PURGE');
    const deadline = Date.now() + 5000;
    let after = await get('/doc');
    while (after.headers.get('cache-status') === 'trellis; hit' && Date.now() < deadline)
      after = await get('/doc');
    expect(after.headers.get('cache-status')).toMatch(/fwd=miss/);
  });
});
