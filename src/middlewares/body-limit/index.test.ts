import { connect } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChainServer, createMiddleware, serveChain } from '../testing.js';
import { bodyLimitMiddleware } from './index.js';

let srv: ChainServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

/** A handler that reads the whole body and reports how much it got. */
async function start() {
  const mw = await createMiddleware(bodyLimitMiddleware, { max: '1kb' });
  const complete: number[] = [];
  srv = await serveChain([mw], async (ctx) => {
    let n = 0;
    try {
      for await (const chunk of ctx.req) n += (chunk as Buffer).length;
    } catch {
      return;
    }
    complete.push(n);
    ctx.res.end(String(n));
  });
  return complete;
}

describe('bodyLimit', () => {
  it('passes bodies within the limit', async () => {
    const complete = await start();
    const r = await request(srv!.url, { method: 'POST', body: 'x'.repeat(1024) });
    expect(await r.body.text()).toBe('1024');
    expect(complete).toEqual([1024]);
  });

  it('refuses a declared Content-Length over the limit with 413 before the handler runs', async () => {
    const complete = await start();
    const r = await request(srv!.url, { method: 'POST', body: 'x'.repeat(4096) });
    expect(r.statusCode).toBe(413);
    expect(((await r.body.json()) as { code: string }).code).toBe('TRELLIS_E_BODY_TOO_LARGE');
    expect(complete).toEqual([]);
  });

  it('counts a chunked body as it streams: 413, and the handler never sees a whole body', async () => {
    const complete = await start();
    const { port } = new URL(srv!.url);
    const head = await new Promise<string>((resolve, reject) => {
      const s = connect(Number(port), '127.0.0.1');
      let got = '';
      s.on('data', (d) => {
        got += d.toString();
        if (got.includes('\r\n\r\n')) {
          s.destroy();
          resolve(got);
        }
      });
      s.on('error', reject);
      s.write('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
      const chunk = 'y'.repeat(600);
      for (let i = 0; i < 3; i++) s.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    });
    expect(head).toMatch(/^HTTP\/1\.1 413 /);
    expect(complete).toEqual([]);
  });
});
