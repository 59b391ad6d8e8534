import { createHash } from 'node:crypto';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { apiKeyMiddleware } from './index.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
let srv: ChainServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

async function start(extra: Record<string, unknown> = {}) {
  const mw = await createMiddleware(apiKeyMiddleware, {
    keys: [
      { name: 'mobile', sha256: sha('key-mobile-123') },
      { name: 'partner', sha256: sha('key-partner-456') },
    ],
    nameHeader: 'x-api-key-name',
    ...extra,
  });
  const seen: Array<{ state: unknown; headers: unknown; url: string | undefined }> = [];
  srv = await serveChain([mw], (ctx) => {
    seen.push({ state: ctx.state.apiKey, headers: { ...ctx.req.headers }, url: ctx.req.url });
    ctx.res.end('ok');
  });
  return seen;
}

describe('apiKey', () => {
  it('names the key in ctx.state and upstream, and does not forward the key itself', async () => {
    const seen = await start();
    const r = await request(srv!.url, {
      headers: { 'x-api-key': 'key-partner-456', 'x-api-key-name': 'mobile' },
    });
    expect(r.statusCode).toBe(200);
    await r.body.text();
    expect(seen[0]!.state).toEqual({ name: 'partner' });
    const h = seen[0]!.headers as Record<string, string>;
    expect(h['x-api-key-name']).toBe('partner');
    expect(h['x-api-key']).toBeUndefined();
  });

  it('refuses missing and wrong keys with 401, and a forged name header never passes alone', async () => {
    const seen = await start();
    const missing = await request(srv!.url, { headers: { 'x-api-key-name': 'partner' } });
    expect(missing.statusCode).toBe(401);
    expect(((await missing.body.json()) as { code: string }).code).toBe('TRELLIS_E_API_KEY_MISSING');
    const wrong = await request(srv!.url, { headers: { 'x-api-key': sha('key-mobile-123') } });
    expect(wrong.statusCode).toBe(401);
    expect(((await wrong.body.json()) as { code: string }).code).toBe('TRELLIS_E_API_KEY_INVALID');
    expect(seen).toEqual([]);
  });

  it('reads the key from a query parameter when configured, and strips it', async () => {
    const seen = await start({ query: 'api_key' });
    const r = await request(`${srv!.url}/items?api_key=key-mobile-123&page=2`);
    await r.body.text();
    expect(r.statusCode).toBe(200);
    expect(seen[0]!.url).toBe('/items?page=2');
    expect(seen[0]!.state).toEqual({ name: 'mobile' });
  });

  it('refuses plain keys in the file and duplicate names', () => {
    expect(() => apiKeyMiddleware.options.parse({ keys: [{ name: 'a', sha256: 'plain' }] })).toThrow(/hex/);
    expect(() =>
      apiKeyMiddleware.options.parse({
        keys: [
          { name: 'a', sha256: sha('1') },
          { name: 'a', sha256: sha('2') },
        ],
      }),
    ).toThrow(/unique/);
  });
});
