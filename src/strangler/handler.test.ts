import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../core/config.js';
import { silentLogger } from '../core/logger.js';
import { createMetricsRegistry } from '../core/metrics.js';
import { TrellisResponse } from '../http/response.js';
import { createServicePool, serviceSchema } from '../http/upstream/index.js';
import type { ServicePool } from '../http/upstream/types.js';
import { createRequestContext } from '../runtime/context.js';
import { StoreSet } from '../runtime/stores.js';
import { stranglerHandler } from './handler.js';
import { stranglerSchema } from './options.js';
import { MigrationState } from './state.js';
import { stranglerRoutes } from './views.js';

// The handler on real service pools and a real TrellisResponse server (no gateway around it):
// modes, the copy and its comparison, the shadow queue, unsafe methods, live state changes.

interface TestOrigin {
  url: string;
  seen: { method: string; url: string; shadow?: string }[];
  close(): Promise<void>;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function listen(server: Server): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () =>
      r({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      }),
    ),
  );
}

async function origin(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestOrigin> {
  const seen: TestOrigin['seen'] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, shadow: req.headers['x-trellis-shadow'] as string });
      answer(req, res);
    });
  });
  const l = await listen(server);
  cleanups.push(l.close);
  return { ...l, seen };
}

const json = (res: ServerResponse, body: unknown) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

async function strangle(yaml: string, services: Record<string, string>, route = 'r1') {
  const dir = mkdtempSync(join(tmpdir(), 'strangler-'));
  const logger = silentLogger();
  const metrics = createMetricsRegistry();
  const storeSet = new StoreSet(logger);
  const pools = new Map<string, ServicePool>();
  for (const [name, url] of Object.entries(services))
    pools.set(name, createServicePool(name, serviceSchema.parse({ upstreams: [url] }), { logger }));
  const handler = await stranglerHandler.create(parseConfig(yaml, stranglerSchema), {
    logger,
    metrics,
    services: pools,
    baseDir: dir,
    stores: {},
    shared: storeSet.view({}),
    routeName: route,
  });
  const server = createServer({ ServerResponse: TrellisResponse as typeof ServerResponse }, (req, res) => {
    const ctx = createRequestContext(req, res, { logger });
    const url = new URL(req.url ?? '/', 'http://gw');
    ctx.path = url.pathname;
    ctx.query = url.search.slice(1);
    void handler(ctx);
  });
  const l = await listen(server);
  const state = new MigrationState(
    await storeSet.view({}).keyValue(`sqlite:${join(dir, 'trellis-strangler.db')}`),
  );
  cleanups.push(async () => {
    await l.close();
    await handler.close?.();
    await storeSet.close();
    await Promise.all([...pools.values()].map((p) => p.close()));
    rmSync(dir, { recursive: true, force: true });
  });
  return { url: l.url, metrics, state, view: () => stranglerRoutes.get(route)! };
}

const until = async (check: () => boolean | Promise<boolean>, what: string) => {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('strangler: handler', () => {
  it('answers from legacy in shadow mode, copies to modern with the marker, and compares', async () => {
    const legacy = await origin((req, res) => json(res, { who: 'same', price: 10, url: req.url }));
    const modern = await origin((req, res) => json(res, { who: 'same', price: 12, url: req.url }));
    const g = await strangle('{ legacy: legacy, modern: modern, mode: shadow, mismatches: { sample: 1 } }', {
      legacy: legacy.url,
      modern: modern.url,
    });
    const res = await fetch(`${g.url}/items/1?x=1`);
    expect(await res.json()).toEqual({ who: 'same', price: 10, url: '/items/1?x=1' });
    await until(() => g.view().report().compared === 1, 'the comparison');
    expect(modern.seen).toEqual([{ method: 'GET', url: '/items/1?x=1', shadow: '1' }]);
    expect(legacy.seen[0]!.shadow).toBeUndefined();
    const r = g.view().report();
    expect(r.fields.map((f) => f.path)).toEqual(['price']);
    expect(r.recent[0]!.answers!.candidate.body).toMatchObject({ price: 12 });
    expect(await g.metrics.getSingleMetricAsString('trellis_strangler_comparisons_total')).toMatch(
      /outcome="mismatch"} 1/,
    );
  });

  it('counts byte-equal answers as matches, copies only the sampled share, times out a silent modern', async () => {
    const legacy = await origin((_req, res) => json(res, { same: true }));
    const modern = await origin((_req, res) => json(res, { same: true }));
    const g = await strangle(
      '{ legacy: legacy, modern: modern, mode: shadow }',
      { legacy: legacy.url, modern: modern.url },
      'r-equal',
    );
    for (let i = 0; i < 3; i++) expect(await (await fetch(`${g.url}/s`)).json()).toEqual({ same: true });
    await until(() => g.view().report().compared === 3, 'three comparisons');
    expect(g.view().report().mismatched).toBe(0);

    const none = await strangle(
      '{ legacy: legacy, modern: modern, mode: shadow, shadow: { sample: 0 } }',
      { legacy: legacy.url, modern: modern.url },
      'r-sampled',
    );
    const before = modern.seen.length;
    for (let i = 0; i < 4; i++) expect((await fetch(`${none.url}/t`)).status).toBe(200);
    expect(none.view().shadow()).toMatchObject({ sent: 0, skipped: 4 });
    expect(modern.seen.length).toBe(before);
    expect(await none.metrics.getSingleMetricAsString('trellis_strangler_shadow_total')).toMatch(
      /outcome="skipped_sample",side=""} 4/,
    );

    const parked: ServerResponse[] = [];
    const silent = await origin((_req, res) => parked.push(res));
    cleanups.push(() => {
      for (const p of parked) p.destroy();
    });
    const slow = await strangle(
      '{ legacy: legacy, modern: modern, mode: shadow, shadow: { timeout: 100ms } }',
      { legacy: legacy.url, modern: silent.url },
      'r-slow',
    );
    const started = performance.now();
    expect((await fetch(`${slow.url}/u`)).status).toBe(200);
    expect((await fetch(`${slow.url}/u`)).status).toBe(200);
    expect(performance.now() - started).toBeLessThan(1000);
    await until(() => slow.view().report().failed === 2, 'both copies timed out');
    expect(slow.view().errors().modern).toBe(2);
    expect(slow.view().shadow()).toMatchObject({ running: 0, waiting: 0 });
  });

  it('drops copies when the queue is full and never copies unsafe methods', async () => {
    const legacy = await origin((_req, res) => json(res, { ok: true }));
    const parked: ServerResponse[] = [];
    const modern = await origin((_req, res) => parked.push(res));
    cleanups.push(() => {
      for (const p of parked) p.destroy();
    });
    const g = await strangle(
      '{ legacy: legacy, modern: modern, mode: shadow, shadow: { concurrency: 1, queue: 0, timeout: 5s } }',
      { legacy: legacy.url, modern: modern.url },
    );
    // The first copy parks on modern and holds the only slot; the rest are dropped at once.
    expect((await fetch(`${g.url}/a`)).status).toBe(200);
    await until(() => modern.seen.length === 1, 'the first copy');
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => fetch(`${g.url}/b`).then((r) => r.status)),
    );
    expect(answers).toEqual([200, 200, 200, 200, 200]);
    expect(performance.now() - started).toBeLessThan(4000);
    expect(g.view().shadow().dropped).toBe(5);
    expect((await fetch(`${g.url}/c`, { method: 'POST', body: 'x' })).status).toBe(200);
    expect(legacy.seen.filter((s) => s.method === 'POST')).toHaveLength(1);
    expect(modern.seen.filter((s) => s.method === 'POST')).toHaveLength(0);
    expect(await g.metrics.getSingleMetricAsString('trellis_strangler_shadow_total')).toMatch(
      /outcome="skipped_unsafe",side=""} 1/,
    );
  });

  it('shadows legacy in reverse in modern mode, and compares nothing when the gateway answered itself', async () => {
    const legacy = await origin((_req, res) => json(res, { side: 'legacy', n: 1 }));
    const modern = await origin((_req, res) => json(res, { side: 'modern', n: 1 }));
    const g = await strangle(
      '{ legacy: legacy, modern: modern, mode: modern, reverseShadow: true, mismatches: { sample: 1 } }',
      { legacy: legacy.url, modern: modern.url },
      'r-reverse',
    );
    expect(await (await fetch(`${g.url}/r`)).json()).toEqual({ side: 'modern', n: 1 });
    await until(() => g.view().report().compared === 1, 'the reverse comparison');
    expect(legacy.seen).toEqual([{ method: 'GET', url: '/r', shadow: '1' }]);
    const r = g.view().report();
    expect(r.fields.map((f) => [f.path, f.example.primary, f.example.candidate])).toEqual([
      ['side', 'modern', 'legacy'],
    ]);
    expect(r.recent[0]).toMatchObject({ primary: 'modern', path: '/r' });

    // Legacy down in shadow mode: the client gets the gateway's 502, the copy still goes out,
    // and with no primary answer to compare it with, it counts as failed, not as a mismatch.
    const gone = await origin((_req, res) => json(res, {}));
    await gone.close();
    const down = await strangle(
      '{ legacy: legacy, modern: modern, mode: shadow }',
      { legacy: gone.url, modern: modern.url },
      'r-legacy-down',
    );
    const res = await fetch(`${down.url}/d`);
    expect(res.status).toBe(502);
    await until(() => down.view().report().failed === 1, 'the copy counted as failed');
    expect(modern.seen.filter((s) => s.url === '/d')).toEqual([{ method: 'GET', url: '/d', shadow: '1' }]);
    expect(down.view().report()).toMatchObject({ compared: 0, mismatched: 0 });
  });

  it('follows the migration state live: canary by sticky key, modern, retired', async () => {
    const legacy = await origin((_req, res) => json(res, { side: 'legacy' }));
    const modern = await origin((_req, res) => json(res, { side: 'modern' }));
    const g = await strangle('{ legacy: legacy, modern: modern, sticky: { header: x-user } }', {
      legacy: legacy.url,
      modern: modern.url,
    });
    const side = async (user: string) =>
      ((await (await fetch(`${g.url}/x`, { headers: { 'x-user': user } })).json()) as { side: string }).side;
    expect(await side('u1')).toBe('legacy');
    await g.state.set('r1', { mode: 'canary', weight: 50, by: 'test' });
    await until(() => g.view().live().mode === 'canary', 'canary');
    const users = Array.from({ length: 40 }, (_, i) => `u${i}`);
    const first = await Promise.all(users.map(side));
    expect(await Promise.all(users.map(side))).toEqual(first);
    expect(first).toContain('modern');
    expect(first).toContain('legacy');
    await g.state.set('r1', { mode: 'modern', by: 'test' });
    await until(() => g.view().live().mode === 'modern', 'modern');
    expect(await side('u1')).toBe('modern');
    await g.state.set('r1', { mode: 'retired', by: 'test' });
    await until(() => g.view().live().mode === 'retired', 'retired');
    const gone = await fetch(`${g.url}/x`);
    expect(gone.status).toBe(410);
    expect(((await gone.json()) as { code: string }).code).toBe('TRELLIS_E_STRANGLER_RETIRED');
  });
});
