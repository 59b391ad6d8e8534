import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { ipFilterMiddleware } from './index.js';

let srv: ChainServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

async function statusFor(options: unknown, clientIp: string, headers: Record<string, string> = {}) {
  const mw = await createMiddleware(ipFilterMiddleware, options);
  let reached = 0;
  srv = await serveChain(
    [mw],
    (ctx) => {
      reached++;
      ctx.res.end('ok');
    },
    { clientIp },
  );
  const r = await request(srv.url, { headers });
  const body = await r.body.text();
  await srv.close();
  srv = undefined;
  return { status: r.statusCode, reached, body, type: r.headers['content-type'] };
}

describe('ipFilter', () => {
  it('allows listed IPv4 and IPv6 blocks and refuses the rest with 403 problem details', async () => {
    const opts = { allow: ['10.0.0.0/8', '2001:db8::/32', '192.168.1.7'] };
    expect((await statusFor(opts, '10.2.3.4')).status).toBe(200);
    expect((await statusFor(opts, '::ffff:10.2.3.4')).status).toBe(200);
    expect((await statusFor(opts, '2001:db8:1::5')).status).toBe(200);
    expect((await statusFor(opts, '192.168.1.7')).status).toBe(200);
    const refused = await statusFor(opts, '192.168.1.8');
    expect(refused.status).toBe(403);
    expect(refused.reached).toBe(0);
    expect(refused.type).toBe('application/problem+json');
    expect(JSON.parse(refused.body).code).toBe('TRELLIS_E_IP_DENIED');
    expect((await statusFor(opts, '2001:db9::1')).status).toBe(403);
  });

  it('checks deny before allow and refuses an address it cannot parse', async () => {
    const opts = { allow: ['10.0.0.0/8'], deny: ['10.9.0.0/16'] };
    expect((await statusFor(opts, '10.9.1.1')).status).toBe(403);
    expect((await statusFor(opts, '10.8.1.1')).status).toBe(200);
    expect((await statusFor({ deny: ['1.2.3.4'] }, 'not-an-ip')).status).toBe(403);
  });

  it('uses the resolved client IP, not a spoofed X-Forwarded-For', async () => {
    const r = await statusFor({ allow: ['10.0.0.0/8'] }, '203.0.113.5', { 'x-forwarded-for': '10.0.0.1' });
    expect(r.status).toBe(403);
    expect(r.reached).toBe(0);
  });

  it('rejects malformed blocks and an empty filter', () => {
    expect(() => ipFilterMiddleware.options.parse({ allow: ['10.0.0.0/33'] })).toThrow(/CIDR/);
    expect(() => ipFilterMiddleware.options.parse({ allow: ['example.com'] })).toThrow(/CIDR/);
    expect(() => ipFilterMiddleware.options.parse({})).toThrow(/allow/);
  });
});
