import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { inFlightMiddleware } from './index.js';

let srv: ChainServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

describe('inFlight', () => {
  it('caps concurrent requests per key with 503 + Retry-After and frees the slot when one ends', async () => {
    const mw = await createMiddleware(inFlightMiddleware, { max: 2, key: { header: 'x-client' } });
    const waiting: Array<() => void> = [];
    srv = await serveChain([mw], (ctx) => {
      waiting.push(() => ctx.res.end('done'));
    });
    const slow = [1, 2].map(() => request(srv!.url, { headers: { 'x-client': 'a' } }));
    const deadline = Date.now() + 5000;
    while (waiting.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const third = await request(srv.url, { headers: { 'x-client': 'a' } });
    expect(third.statusCode).toBe(503);
    expect(third.headers['retry-after']).toBe('1');
    expect(((await third.body.json()) as { code: string }).code).toBe('TRELLIS_E_TOO_MANY_IN_FLIGHT');
    // Another key has its own slots.
    const other = request(srv.url, { headers: { 'x-client': 'b' } });
    while (waiting.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(waiting.length).toBe(3);
    for (const w of waiting.splice(0)) w();
    for (const r of await Promise.all([...slow, other])) expect(await r.body.text()).toBe('done');
    const again = request(srv.url, { headers: { 'x-client': 'a' } });
    while (waiting.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    waiting[0]!();
    expect((await again).statusCode).toBe(200);
  });
});
