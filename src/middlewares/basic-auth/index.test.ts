import { request } from 'undici';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { basicAuthMiddleware, hashPassword } from './index.js';

let srv: ChainServer | undefined;
let hash: string;
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
// A low scrypt cost keeps the test fast; the default cost is used in production.
beforeAll(async () => {
  hash = await hashPassword('correct horse', { N: 1024, r: 8, p: 1 });
});
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

describe('basicAuth', () => {
  it('lets a right password through with the user passed upstream, and strips Authorization', async () => {
    const mw = await createMiddleware(basicAuthMiddleware, {
      users: [{ name: 'ada', hash }],
      userHeader: 'x-user',
    });
    const seen: Array<Record<string, unknown>> = [];
    srv = await serveChain([mw], (ctx) => {
      seen.push({ ...ctx.req.headers, state: ctx.state.basicAuth });
      ctx.res.end('ok');
    });
    const r = await request(srv.url, {
      headers: { authorization: basic('ada', 'correct horse'), 'x-user': 'root' },
    });
    await r.body.text();
    expect(r.statusCode).toBe(200);
    expect(seen[0]!['x-user']).toBe('ada');
    expect(seen[0]!.authorization).toBeUndefined();
    expect(seen[0]!.state).toEqual({ user: 'ada' });
  });

  it('refuses wrong passwords, unknown users and garbage with 401 and a challenge', async () => {
    const mw = await createMiddleware(basicAuthMiddleware, { users: [{ name: 'ada', hash }], realm: 'shop' });
    let reached = 0;
    srv = await serveChain([mw], (ctx) => {
      reached++;
      ctx.res.end('ok');
    });
    for (const authorization of [
      basic('ada', 'wrong'),
      basic('bob', 'correct horse'),
      'Basic !!!',
      'Bearer x',
      '',
    ]) {
      const r = await request(srv.url, { headers: authorization ? { authorization } : {} });
      expect(r.statusCode).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Basic realm="shop", charset="UTF-8"');
      expect(((await r.body.json()) as { code: string }).code).toBe('TRELLIS_E_BASIC_AUTH_INVALID');
    }
    expect(reached).toBe(0);
  });

  it('never accepts a plain password in the file', () => {
    expect(() => basicAuthMiddleware.options.parse({ users: [{ name: 'ada', hash: 'secret' }] })).toThrow(
      /scrypt/,
    );
  });
});
