import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Gateway, startGateway } from '../gateway/gateway.js';
import { gatewayTypes } from '../gateway/types.js';
import { defineHandler } from '../handlers/types.js';
import { defineMiddleware } from '../middlewares/types.js';
import { memoryProvider } from './providers/memory.js';
import { extendTypes } from './registry.js';

/** Polls `read` until `ok` holds for its value, or fails after `ms`. */
async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline)
      throw new Error(`not reached within ${ms} ms; last value: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A port something else holds for the test. */
async function takenPort(): Promise<{ port: number; server: Server }> {
  const server = createServer((_req, res) => res.end('someone else'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, server };
}

async function get(port: number | undefined, path: string, init: RequestInit = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, init);
  return { status: res.status, headers: res.headers, body: await res.text() };
}

// A library user's own types: a handler answering `hello <name>` and a middleware that stamps
// the response (response phase) with a header whose value comes from a file.
const helloHandler = defineHandler({
  type: 'hello',
  options: z.strictObject({ name: z.string() }),
  create: (o) => (ctx) => {
    ctx.res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] });
    ctx.res.end(`hello ${o.name} ${ctx.params.id ?? ''}`.trim());
  },
});
const stampMiddleware = defineMiddleware({
  type: 'stamp',
  options: z.strictObject({ header: z.string(), valueFile: z.string() }),
  create(o, deps) {
    const value = readFileSync(join(deps.baseDir, o.valueFile), 'utf8').trim();
    return (next) => (ctx) => {
      ctx.onResponse({
        head(head) {
          head.setHeader(o.header, value);
          head.statusCode = head.statusCode === 200 ? 203 : head.statusCode;
          return undefined;
        },
        write: (chunk, out) => out.write(chunk.toString().toUpperCase()),
      });
      return next(ctx);
    };
  },
});
const types = extendTypes(gatewayTypes, { handlers: [helloHandler], middlewares: [stampMiddleware] });

describe('the runtime, through startGateway', () => {
  let dir: string;
  let gw: Gateway | undefined;
  const others: Server[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-runtime-'));
  });
  afterEach(async () => {
    await gw?.stop(1_000);
    gw = undefined;
    for (const s of others.splice(0)) await new Promise((r) => s.close(r));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves traffic through a handler and a middleware a library user registered', async () => {
    writeFileSync(join(dir, 'stamp.txt'), 'v1\n');
    const provider = memoryProvider(
      {
        listen: { host: '127.0.0.1', port: 0 },
        admin: { enabled: false },
        middlewares: { stamped: { stamp: { header: 'x-stamp', valueFile: 'stamp.txt' } } },
        routes: [{ match: { path: '/hi/:id' }, middlewares: ['stamped'], hello: { name: 'ada' } }],
      },
      { baseDir: dir },
    );
    gw = await startGateway({ provider, types });
    const r = await get(gw.ports.main, '/hi/7');
    expect(r.status).toBe(203);
    expect(r.body).toBe('HELLO ADA 7');
    expect(r.headers.get('x-stamp')).toBe('v1');
    expect(r.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
  });

  it('refuses a custom type that takes a built-in name, and unknown types in a file', async () => {
    expect(() => extendTypes(gatewayTypes, { handlers: [{ ...helloHandler, type: 'proxy' }] })).toThrow(
      /already registered/,
    );
    await expect(
      startGateway({
        text: 'listen: { port: 0 }\nroutes:\n  - { match: { path: / }, hello: { name: x } }\n',
      }),
    ).rejects.toThrow(/hello/);
  });

  it('is driven by a memory provider: set() validates and swaps, a bad object is rejected', async () => {
    const config = (body: string) => ({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { enabled: false },
      routes: [{ match: { path: '/' }, respond: { status: 200, body } }],
    });
    const provider = memoryProvider(config('one'));
    gw = await startGateway({ provider });
    expect((await get(gw.ports.main, '/')).body).toBe('one');
    expect(await provider.set(config('two'))).toMatchObject({ ok: true, version: 2, label: '<memory>' });
    expect((await get(gw.ports.main, '/')).body).toBe('two');
    const bad = await provider.set({
      ...config('x'),
      routes: [{ match: { path: '/' }, proxy: { service: 'nope' } }],
    });
    expect(bad.ok).toBe(false);
    expect(bad.errors?.join('\n')).toMatch(/unknown service "nope"/);
    expect((await get(gw.ports.main, '/')).body).toBe('two');
  });

  it('a reload onto a taken port is rejected and the old listener keeps serving; /readyz stays true to it', async () => {
    const other = await takenPort();
    others.push(other.server);
    const file = (port: number, body: string) => `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: 0 }
routes:
  - { match: { path: / }, respond: { status: 200, body: ${body} } }
`;
    gw = await startGateway({ text: file(0, 'first') });
    const port = gw.ports.main!;
    const result = await gw.applyConfig(file(other.port, 'second'), 'gw.yaml');
    expect(result.ok).toBe(false);
    expect(result.errors?.join('\n')).toMatch(/address is taken/);
    expect(gw.version).toBe(1);
    expect(gw.ports.main).toBe(port);
    expect((await get(port, '/')).body).toBe('first');
    const ready = await get(gw.ports.admin, '/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toMatchObject({
      status: 'ready',
      listeners: { main: { port, listening: true } },
    });
    // A reload that moves to a free port opens it first, then closes the old one.
    const applied = await gw.applyConfig(file(0, 'third'), 'gw.yaml');
    expect(applied.ok).toBe(true);
    expect((await get(gw.ports.main, '/')).body).toBe('third');
  });

  it('a reload that changes only listener options rebinds in place, and restores the old on failure', async () => {
    const file = (extra: string) => `listen: { host: 127.0.0.1, port: PORT${extra} }
admin: { enabled: false }
routes:
  - { match: { path: / }, respond: { status: 200, body: ok } }
`;
    gw = await startGateway({ text: file('').replace('PORT', '0') });
    const port = gw.ports.main!;
    const same = (extra: string) => file(extra).replace('PORT', String(port));
    expect((await gw.applyConfig(same(', maxHeaderCount: 50'), 'gw.yaml')).ok).toBe(true);
    expect(gw.ports.main).toBe(port);
    expect((await get(port, '/')).body).toBe('ok');
    const broken = await gw.applyConfig(same(', tls: { cert: missing.pem, key: missing.key }'), 'gw.yaml');
    expect(broken.ok).toBe(false);
    // Says what failed (the certificate), not "pick a free port".
    expect(broken.errors?.join('\n')).toMatch(/missing\.pem/);
    expect(broken.errors?.join('\n')).not.toMatch(/free port/);
    expect((await get(port, '/')).body).toBe('ok');
  });

  it('refuses an empty or truncated file at start and on reload, and a reload may not drop listen:', async () => {
    await expect(startGateway({ text: '' })).rejects.toThrow(/empty/);
    await expect(startGateway({ text: 'admin: { enabled: false }\n' })).rejects.toThrow(/truncated/);
    const file = `listen: { host: 127.0.0.1, port: 0 }
admin: { enabled: false }
routes:
  - { match: { path: / }, respond: { status: 200, body: ok } }
`;
    gw = await startGateway({ text: file });
    const port = gw.ports.main;
    expect((await gw.applyConfig('', 'gw.yaml')).errors?.join('\n')).toMatch(/empty/);
    const noListen = await gw.applyConfig(file.split('\n').slice(1).join('\n'), 'gw.yaml');
    expect(noListen.ok).toBe(false);
    expect(noListen.errors?.join('\n')).toMatch(/listen: is missing/);
    expect(gw.ports.main).toBe(port);
    expect((await get(port, '/')).body).toBe('ok');
  });

  it('recompiles when a file the configuration refers to changes (the gateway file untouched)', async () => {
    writeFileSync(join(dir, 'value.txt'), 'before\n');
    const file = join(dir, 'gw.yaml');
    writeFileSync(
      file,
      `listen: { host: 127.0.0.1, port: 0 }
admin: { enabled: false }
middlewares:
  stamped: { stamp: { header: x-stamp, valueFile: value.txt } }
routes:
  - { match: { path: / }, middlewares: [stamped], respond: { status: 200, body: ok } }
`,
    );
    gw = await startGateway({ file, types });
    expect((await get(gw.ports.main, '/')).headers.get('x-stamp')).toBe('before');
    writeFileSync(join(dir, 'value.txt'), 'after\n');
    await eventually(
      async () => (await get(gw!.ports.main, '/')).headers.get('x-stamp'),
      (v) => v === 'after',
    );
    expect(gw.version).toBe(2);
  });

  it('stores: accepts every building-block scheme and refuses others at validation', async () => {
    const file = (url: string) =>
      `listen: { host: 127.0.0.1, port: 0 }\nadmin: { enabled: false }\nstores: { s: '${url}' }\nroutes: []\n`;
    await expect(startGateway({ text: file('mysql://db/x'), label: 'gw.yaml' })).rejects.toThrow(
      /gw\.yaml:3:\d+ stores\.s: .*no "mysql" backend/,
    );
    for (const url of [
      'memory:',
      `sqlite:${join(dir, 'kv.db')}`,
      'postgres://h/db',
      'etcd://h:2379',
      'nats://h:4222',
    ]) {
      gw = await startGateway({ text: file(url) });
      await gw.stop(1_000);
      gw = undefined;
    }
  });

  it('the admin API answers a write method with 405 TRELLIS_E_ADMIN_METHOD_NOT_ALLOWED', async () => {
    gw = await startGateway({
      text: 'listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\nroutes: []\n',
    });
    const r = await get(gw.ports.admin, '/healthz', { method: 'POST' });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET, HEAD');
    expect(JSON.parse(r.body).code).toBe('TRELLIS_E_ADMIN_METHOD_NOT_ALLOWED');
  });
});
