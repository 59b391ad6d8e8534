import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, freePort, spawnCli, type TempDir, tempDir, waitUntil } from '../support/index.js';

/**
 * What a thread workload's request channel (src/host/channel.ts: requests over a MessagePort,
 * not a loopback HTTP hop) must carry as HTTP did: request bodies, headers both ways (each
 * Set-Cookie), the status, a streamed answer whose first part reaches the client
 * before the rest exists, a large body under backpressure, a workload's throw as a 500, a
 * client that leaves (the Request's signal aborts, a streamed answer is cancelled), and
 * node:http handlers (which keep the loopback listener) beside fetch-style ones.
 */

let dir: TempDir;
let host: CliProcess;
let port: number;
let admin: number;

beforeAll(async () => {
  dir = tempDir('trellis-host-channel-');
  port = await freePort();
  admin = await freePort();
  dir.write(
    'app.mjs',
    `let release;
const released = new Promise((r) => { release = r; });
const big = new Uint8Array(64 * 1024).fill(120);
const enc = (t) => new TextEncoder().encode(t);
const seen = { waiting: false, abortedAt: 0, cancelledAt: 0 };
export async function fetch(request) {
  const url = new URL(request.url);
  switch (url.pathname) {
    case '/wait':
      seen.waiting = true;
      if (!request.signal.aborted)
        await new Promise((resolve) => request.signal.addEventListener('abort', resolve, { once: true }));
      seen.abortedAt = Date.now();
      return new Response('too late');
    case '/forever': {
      let timer;
      return new Response(new ReadableStream({
        start(c) { c.enqueue(enc('tick;')); timer = setInterval(() => c.enqueue(enc('tick;')), 20); },
        cancel() { clearInterval(timer); seen.cancelledAt = Date.now(); },
      }));
    }
    case '/seen':
      return Response.json(seen);
    case '/echo': {
      const body = await request.text();
      const headers = new Headers({ 'x-seen': request.headers.get('x-test') ?? '', 'x-host': url.host });
      headers.append('set-cookie', 'a=1');
      headers.append('set-cookie', 'b=2');
      return new Response(request.method + ' ' + url.search + ' ' + body, { status: 201, statusText: 'Made', headers });
    }
    case '/stream':
      return new Response(new ReadableStream({
        async start(c) {
          c.enqueue(new TextEncoder().encode('first;'));
          await released;
          c.enqueue(new TextEncoder().encode('second'));
          c.close();
        },
      }));
    case '/release':
      release();
      return new Response('ok');
    case '/big': {
      let n = 0;
      return new Response(new ReadableStream({
        pull(c) { if (n++ < 64) c.enqueue(big); else c.close(); },
      }));
    }
    case '/throw':
      throw new Error('boom');
    default:
      return new Response('?', { status: 404 });
  }
}`,
  );
  dir.write(
    'node.mjs',
    `export default function (req, res) { res.setHeader('content-type', 'text/plain'); res.end('node ' + req.url); }`,
  );
  dir.write(
    'host.yaml',
    `listen: { host: 127.0.0.1, port: ${port} }
admin: { port: ${admin} }
workloads:
  app: { kind: http, module: ./app.mjs, mount: /app }
  legacy: { kind: http, module: ./node.mjs, mount: /legacy }
  separate: { kind: http, module: ./app.mjs, mount: /separate, isolation: process }
`,
  );
  host = spawnCli(['host', '-c', join(dir.path, 'host.yaml')]);
  await host.waitForOutput(/"msg":"host started"/, 45_000);
}, 60_000);

afterAll(async () => {
  const code = await host?.stop();
  dir?.cleanup();
  expect(code).toBe(0);
}, 30_000);

const at = (path: string) => `http://127.0.0.1:${port}${path}`;

describe('an http thread workload over its channel', () => {
  it('carries the request body, headers both ways and the status', async () => {
    const body = 'x'.repeat(700_000);
    const res = await fetch(at('/app/echo?q=1'), { method: 'POST', body, headers: { 'x-test': 'yes' } });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-seen')).toBe('yes');
    expect(res.headers.get('x-host')).toBe(`127.0.0.1:${port}`);
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(res.headers.get('x-request-id')).toBeTruthy();
    expect(await res.text()).toBe(`POST ?q=1 ${body}`);
  });

  it('streams: the first part arrives before the rest exists', async () => {
    const res = await fetch(at('/app/stream'));
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('first;');
    // Only now does the rest come into being: had the host waited for the whole body, this
    // request would never have been answered.
    expect(await (await fetch(at('/app/release'))).text()).toBe('ok');
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read())
      rest += new TextDecoder().decode(r.value);
    expect(rest).toBe('second');
  });

  it('carries a body larger than its window, and answers a throw with 500', async () => {
    const res = await fetch(at('/app/big'));
    expect((await res.arrayBuffer()).byteLength).toBe(64 * 64 * 1024);
    const failed = await fetch(at('/app/throw'));
    expect(failed.status).toBe(500);
    expect(await failed.json()).toMatchObject({ detail: 'boom' });
  });

  it('serves a node:http handler beside it', async () => {
    const res = await fetch(at('/legacy/x?y=1'));
    expect(await res.text()).toBe('node /x?y=1');
  });

  // A thread's requests come over the channel; a process's over its loopback listener.
  describe.each(['/app', '/separate'])('when the client leaves (%s)', (mount) => {
    const seen = async () =>
      (await (await fetch(at(`${mount}/seen`))).json()) as {
        waiting: boolean;
        abortedAt: number;
        cancelledAt: number;
      };

    it("aborts the Request's signal", async () => {
      const req = httpRequest(at(`${mount}/wait`));
      req.on('error', () => {});
      req.end();
      await waitUntil(async () => (await seen()).waiting, 'the handler waiting on its signal');
      const closedAt = Date.now();
      req.destroy();
      const s = await waitUntil(async () => {
        const x = await seen();
        return x.abortedAt > 0 ? x : undefined;
      }, 'the abort reaching the handler');
      // ~10 ms on a quiet machine; the bound leaves room for a loaded one.
      expect(s.abortedAt - closedAt).toBeLessThan(500);
    });

    it('cancels a streamed answer', async () => {
      const req = httpRequest(at(`${mount}/forever`));
      req.on('error', () => {});
      const first = new Promise<string>((resolve) =>
        req.on('response', (res) => res.once('data', (c: Buffer) => resolve(c.toString()))),
      );
      req.end();
      expect(await first).toContain('tick;');
      const closedAt = Date.now();
      req.destroy();
      const s = await waitUntil(async () => {
        const x = await seen();
        return x.cancelledAt > 0 ? x : undefined;
      }, 'the cancel reaching the stream');
      expect(s.cancelledAt - closedAt).toBeLessThan(500);
    });
  });
});
