import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { createServicePool, type UpstreamPool } from '../upstream/pool.js';
import { serviceSchema } from '../upstream/schema.js';
import { startOrigin, type TestOrigin } from '../upstream/testing.js';
import { exchange } from './buffered.js';

// The buffered form of the forwarding exchange, as a handler to come (shadow, translate) uses it.
describe('exchange (buffered)', () => {
  let origin: TestOrigin;
  let pool: UpstreamPool;
  let flaky = 0;

  beforeAll(async () => {
    origin = await startOrigin((req, res) => {
      if (req.url === '/big') return void res.end('x'.repeat(2000));
      if (req.url === '/slow') return void setTimeout(() => res.end('late'), 300);
      if (req.url === '/stream') {
        res.write('x'.repeat(600));
        return void res.end('x'.repeat(600));
      }
      if (req.url === '/flaky' && flaky++ === 0) return void res.writeHead(503).end();
      if (req.url === '/teapot') return void res.writeHead(418, { 'x-why': 'tea' }).end('short and stout');
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`${req.method} ${req.url}`);
    });
    const def = serviceSchema.parse({
      upstreams: [origin.url],
      retry: { attempts: 2, backoff: { base: 1, max: 2 } },
    });
    pool = createServicePool('o', def, { logger: silentLogger() });
  });

  afterAll(async () => {
    await pool.close();
    await origin.close();
  });

  const send = (path: string, more: Partial<Parameters<typeof exchange>[1]> = {}) =>
    exchange(pool, { method: 'GET', path, headers: {}, maxBodySize: 1024, ...more });

  it('answers status, headers and body of any status', async () => {
    const r = await send('/teapot');
    expect(r).toMatchObject({ ok: true, status: 418, upstream: origin.url, attempts: 1 });
    if (!r.ok) throw new Error('expected an answer');
    expect(r.headers['x-why']).toBe('tea');
    expect(r.body.toString()).toBe('short and stout');
  });

  it('retries a 503 for an idempotent method and says how many attempts it took', async () => {
    const r = await send('/flaky');
    expect(r).toMatchObject({ ok: true, status: 200, attempts: 2 });
  });

  it('refuses a body over the limit, declared or streamed', async () => {
    expect(await send('/big')).toMatchObject({ ok: false, failure: 'tooLarge', status: 200 });
    expect(await send('/stream')).toMatchObject({ ok: false, failure: 'tooLarge', status: 200 });
  });

  it('leaves the body unread when readBody says no', async () => {
    const r = await send('/teapot', { readBody: (s) => s < 400 });
    expect(r).toMatchObject({ ok: true, status: 418 });
    if (r.ok) expect(r.body.length).toBe(0);
  });

  it('sends a buffered body and ends as aborted when the signal fires', async () => {
    const posted = await send('/echo', { method: 'POST', body: 'hello' });
    expect(posted.ok && posted.body.toString()).toBe('POST /echo');
    const ac = new AbortController();
    ac.abort(new Error('client left'));
    expect(await send('/echo', { signal: ac.signal })).toMatchObject({ ok: false, failure: 'aborted' });
    const late = new AbortController();
    const pending = send('/slow', { signal: late.signal });
    late.abort(new Error('client left'));
    expect(await pending).toMatchObject({ ok: false, failure: 'aborted', attempts: 1 });
  });
});
