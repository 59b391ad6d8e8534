import { createServer, type Server } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway } from './gateway.js';

/** A loopback origin answering `name path`, optionally after a delay; `hits` counts arrivals. */
async function origin(
  name: string,
  delayMs = 0,
): Promise<{ server: Server; url: string; hits: () => number }> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    setTimeout(() => res.end(`${name} ${req.url}`), delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, hits: () => hits };
}

describe('startGateway (library API)', () => {
  let one: Awaited<ReturnType<typeof origin>>;
  let two: Awaited<ReturnType<typeof origin>>;
  let slow: Awaited<ReturnType<typeof origin>>;
  let gw: Gateway | undefined;

  beforeAll(async () => {
    [one, two, slow] = await Promise.all([origin('one'), origin('two'), origin('slow', 300)]);
  });
  afterEach(async () => {
    await gw?.stop(1_000);
    gw = undefined;
  });
  afterAll(async () => {
    for (const o of [one, two, slow]) await new Promise((r) => o.server.close(r));
  });

  const file = (service: string, extra = '') => `listen: { port: 0, host: 127.0.0.1 }
admin: { enabled: false }
services:
  one: { upstreams: ['${one.url}'] }
  two: { upstreams: ['${two.url}'] }
  slow: { upstreams: ['${slow.url}'] }
routes:
  - { match: { pathPrefix: /app }, proxy: { service: ${service} } }
${extra}`;

  const text = async (port: number | undefined, path: string, host?: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, host ? { headers: { 'x-host': host } } : {});
    return `${res.status} ${await res.text()}`;
  };

  it('swaps a valid configuration in and refuses an invalid one, which keeps the old serving', async () => {
    gw = await startGateway({ text: file('one'), label: 'gw.yaml' });
    const port = gw.ports.main;
    expect(await text(port, '/app/a')).toBe('200 one /app/a');
    expect(await gw.applyConfig(file('two'), 'gw.yaml')).toMatchObject({
      ok: true,
      version: 2,
      label: 'gw.yaml',
    });
    expect(await text(port, '/app/a')).toBe('200 two /app/a');
    const rejected = await gw.applyConfig(file('three'), 'gw.yaml');
    expect(rejected).toMatchObject({
      ok: false,
      version: 2,
      errors: ['gw.yaml:8:54 routes[0].proxy.service: unknown service "three": define it under services:'],
    });
    expect(gw.version).toBe(2);
    expect(await text(port, '/app/a')).toBe('200 two /app/a');
  });

  it('lets in-flight requests finish on the configuration they started with', async () => {
    gw = await startGateway({
      text: file('one', '  - { match: { pathPrefix: /slow }, proxy: { service: slow } }\n'),
      label: 'gw.yaml',
    });
    const port = gw.ports.main;
    const before = slow.hits();
    const inFlight = text(port, '/slow/x');
    const deadline = Date.now() + 5_000;
    while (slow.hits() === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const result = await gw.applyConfig(file('one'), 'gw.yaml');
    expect(result.ok).toBe(true);
    expect(await inFlight).toBe('200 slow /slow/x');
    expect(await text(port, '/slow/x')).toMatch(/^404 /);
  });

  it('runs frontends on their own listener or on a host / path prefix of the main one', async () => {
    gw = await startGateway({
      text: file(
        'one',
        `frontends:
  mobile:
    listen: { port: 0, host: 127.0.0.1 }
    routes:
      - { match: { pathPrefix: /app }, proxy: { service: two } }
  web:
    pathPrefix: /web
    routes:
      - { match: { pathPrefix: /app }, proxy: { service: two, stripPrefix: /web } }
`,
      ),
      label: 'gw.yaml',
    });
    expect(Object.keys(gw.ports).sort()).toEqual(['main', 'mobile']);
    expect(await text(gw.ports.main, '/app/x')).toBe('200 one /app/x');
    expect(await text(gw.ports.main, '/web/app/x')).toBe('200 two /app/x');
    expect(await text(gw.ports.mobile, '/app/x')).toBe('200 two /app/x');
    expect(await text(gw.ports.mobile, '/web/app/x')).toMatch(/^404 /);
  });

  it('opens and closes frontend listeners on reload', async () => {
    gw = await startGateway({ text: file('one'), label: 'gw.yaml' });
    const withFrontend = file(
      'one',
      'frontends:\n  m:\n    listen: { port: 0, host: 127.0.0.1 }\n    routes:\n      - { respond: { body: m } }\n',
    );
    expect((await gw.applyConfig(withFrontend, 'gw.yaml')).ok).toBe(true);
    const port = gw.ports.m;
    expect(await text(port, '/anything')).toBe('200 m');
    expect((await gw.applyConfig(file('one'), 'gw.yaml')).ok).toBe(true);
    expect(gw.ports.m).toBeUndefined();
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
  });

  it('prepares without swapping: commit swaps, abort drops, and other reloads wait their turn', async () => {
    gw = await startGateway({ text: file('one'), label: 'gw.yaml' });
    const port = gw.ports.main;
    const prepared = await gw.prepareConfig(file('two'), 'gw.yaml');
    expect(prepared).toMatchObject({ ok: true, version: 2 });
    // Prepared, not yet serving.
    expect(await text(port, '/app/a')).toBe('200 one /app/a');
    let later: string | undefined;
    const waiting = gw.applyConfig(file('slow'), 'gw.yaml').then((r) => {
      later = `${r.ok} ${r.version}`;
    });
    // A whole request later the waiting reload has still not run: the prepared one holds the turn.
    expect(await text(port, '/app/a')).toBe('200 one /app/a');
    expect(later).toBeUndefined();
    expect(prepared.commit()).toMatchObject({ ok: true, version: 2 });
    expect(gw.version).toBe(2);
    await waiting;
    expect(later).toBe('true 3');
    const dropped = await gw.prepareConfig(file('one'), 'gw.yaml');
    await dropped.abort();
    expect(gw.version).toBe(3);
    expect(await text(port, '/app/b')).toBe('200 slow /app/b');
    const bad = await gw.prepareConfig(file('nope'), 'gw.yaml');
    expect(bad.ok).toBe(false);
    expect(bad.result?.errors?.join('\n')).toMatch(/unknown service "nope"/);
  });
});
