import { writeFileSync } from 'node:fs';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  type Origin,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

// `workers: 2` through the real CLI: reloads reach every worker, a killed worker is replaced
// without touching the other's connections, SIGTERM drains them all.

/** Connections the load uses: cluster hands them to the workers in turn, so each gets some. */
const CONNECTIONS = 8;

interface Load {
  readonly clients: Client[];
  readonly failures: string[];
  /** Clients whose connection was closed under them at least once. */
  readonly disconnected: Set<number>;
  readonly seen: string[];
  requests: number;
  stop(): Promise<void>;
}

/** Keeps one request in flight on each of CONNECTIONS connections (bounded: 40,000 requests). */
function startLoad(url: string, path: string): Load {
  const clients = Array.from({ length: CONNECTIONS }, () => new Client(url, { pipelining: 1 }));
  let stopped = false;
  const load: Load = {
    clients,
    failures: [],
    disconnected: new Set(),
    seen: [],
    requests: 0,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      await Promise.all(clients.map((c) => c.close()));
    },
  };
  clients.forEach((c, i) => {
    c.on('disconnect', () => {
      if (!stopped) load.disconnected.add(i);
    });
  });
  const loops = clients.map(async (client) => {
    while (!stopped && load.requests < 40_000) {
      load.requests++;
      try {
        const r = await client.request({ path, method: 'GET' });
        const text = await r.body.text();
        if (r.statusCode !== 200) load.failures.push(`${r.statusCode} ${text}`);
        else load.seen.push((JSON.parse(text) as { origin: string }).origin);
      } catch (err) {
        load.failures.push(String(err));
      }
    }
  });
  return load;
}

/** Worker pids from the primary's `worker started` lines, in order. */
function workerPids(gw: GatewayProcess): number[] {
  return gw
    .output()
    .split('\n')
    .filter((l) => l.includes('"msg":"worker started"'))
    .map((l) => (JSON.parse(l) as { pid: number }).pid);
}

describe('trellis gateway: workers: 2', () => {
  let dir: TempDir;
  let blue: Origin;
  let green: Origin;
  let slow: Origin;
  let gw: GatewayProcess;

  const config = (color: 'blue' | 'green', extra = '') => `listen: { port: 0, host: 127.0.0.1 }
workers: 2
services:
  blue: { upstreams: ['${blue.url}'] }
  green: { upstreams: ['${green.url}'] }
  slow: { upstreams: ['${slow.url}'] }
routes:
  - match: { pathPrefix: /app }
    proxy: { service: ${color} }
  - match: { pathPrefix: /slow }
    proxy: { service: slow }
${extra}`;

  beforeAll(async () => {
    dir = tempDir();
    blue = await startOrigin('blue');
    green = await startOrigin('green');
    slow = await startOrigin('slow', (req, res) => {
      const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 20);
      setTimeout(() => {
        const body = JSON.stringify({ origin: 'slow' });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      }, ms);
    });
    gw = await startGatewayCli(`${dir.path}/gateway.yaml`, config('blue'));
    await waitUntil(() => workerPids(gw).length === 2, 'two workers to start');
  });

  afterAll(async () => {
    await gw?.stop('SIGKILL');
    await Promise.all([blue?.close(), green?.close(), slow?.close()]);
    dir?.cleanup();
  });

  const adminJson = async <T>(path: string) => (await (await fetch(`${gw.adminUrl}${path}`)).json()) as T;
  const version = async () => (await adminJson<{ version: number }>('/admin/config')).version;

  it('serves on both workers behind one port, with one admin listener for all', async () => {
    const ready = await adminJson<{ status: string; workers: { ready: number; expected: number } }>(
      '/readyz',
    );
    expect(ready).toEqual({ status: 'ready', workers: { ready: 2, expected: 2 } });
    const load = startLoad(gw.url, '/app/warm');
    await waitUntil(() => load.requests > 200, 'some requests');
    await load.stop();
    expect(load.failures).toEqual([]);
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    // Both workers' counts, merged: every request answered so far is there.
    const served = metrics
      .split('\n')
      .filter((l) => l.startsWith('trellis_gateway_requests_total{') && l.includes('route="default#0"'))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    expect(served).toBeGreaterThanOrEqual(load.seen.length);
    expect(metrics).toMatch(/^trellis_gateway_workers 2$/m);
  });

  it('applies 20 reloads under load on every worker at once, with zero failed requests', async () => {
    const load = startLoad(gw.url, '/app/x');
    const start = await version();
    for (let i = 1; i <= 20; i++) {
      const color = i % 2 === 1 ? 'green' : 'blue';
      writeFileSync(gw.file, config(color, `# reload ${i}\n`));
      await waitUntil(async () => (await version()) === start + i, `reload ${i} to be applied`, 15_000);
      // Once the primary reports the version, no worker answers from the old one: fresh
      // requests on every connection (both workers) all reach the new color.
      const answers = await Promise.all(
        load.clients.map(async () => {
          const res = await fetch(`${gw.url}/app/check`, { headers: { connection: 'close' } });
          return ((await res.json()) as { origin: string }).origin;
        }),
      );
      expect(answers).toEqual(Array(CONNECTIONS).fill(color));
    }
    await load.stop();
    expect(load.failures).toEqual([]);
    expect(load.disconnected.size).toBe(0);
    expect(new Set(load.seen)).toEqual(new Set(['blue', 'green']));
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    // Counted once per reload by the primary, not once per worker.
    expect(metrics).toMatch(/^trellis_gateway_reloads_total\{result="applied"\} 20$/m);
  });

  it('rejects a reload on every worker when it is invalid, and keeps serving', async () => {
    const before = await version();
    writeFileSync(
      gw.file,
      `${config('blue')}\n  - match: { pathPrefix: /bad }\n    proxy: { service: nope }\n`,
    );
    await waitUntil(
      async () =>
        (await adminJson<{ lastReload: { ok: boolean } | null }>('/admin/config')).lastReload?.ok === false,
      'the rejection',
    );
    expect(await version()).toBe(before);
    const res = await fetch(`${gw.url}/app/still`);
    expect(res.status).toBe(200);
    writeFileSync(gw.file, config('blue', '# valid again\n'));
    await waitUntil(async () => (await version()) === before + 1, 'the valid reload');
    // Valid text that fails in the workers (a listener on a port that is taken): rejected on
    // all, and the next reload is not stuck behind it.
    const taken = `frontends:\n  m:\n    listen: { port: ${gw.ports.admin}, host: 127.0.0.1 }\n    routes:\n      - { respond: { body: m } }\n`;
    writeFileSync(gw.file, config('blue', taken));
    await waitUntil(async () => {
      const c = await adminJson<{ lastReload: { ok: boolean; errors?: string[] } | null }>('/admin/config');
      return (
        c.lastReload?.ok === false &&
        c.lastReload.errors?.some((e) => e.includes('listener could not be opened'))
      );
    }, 'the listener failure');
    expect(await version()).toBe(before + 1);
    writeFileSync(gw.file, config('blue', '# valid once more\n'));
    await waitUntil(async () => (await version()) === before + 2, 'the next valid reload');
  });

  it('replaces a SIGKILLed worker, losing only the requests that worker had in flight', async () => {
    const [first] = workerPids(gw);
    const load = startLoad(gw.url, '/slow?ms=20');
    await waitUntil(() => load.requests > 100, 'load on both workers');
    const before = load.requests;
    process.kill(first!, 'SIGKILL');
    await gw.waitForOutput(/"msg":"worker exited: replacing it/);
    await waitUntil(() => workerPids(gw).length === 3, 'a replacement worker', 20_000);
    // The cluster serves with two workers again, and the load keeps going.
    await waitUntil(
      async () =>
        (await adminJson<{ workers: { ready: number } }>('/readyz')).workers.ready === 2 &&
        load.requests > before + 200,
      'two ready workers and more requests',
    );
    await load.stop();
    // Each client has one request in flight at a time: the losses are at most one per
    // connection the dead worker held, and the other worker's connections were never cut.
    expect(load.disconnected.size).toBeGreaterThan(0);
    expect(load.disconnected.size).toBeLessThan(CONNECTIONS);
    expect(load.failures.length).toBeLessThanOrEqual(load.disconnected.size);
    for (const f of load.failures) expect(f).toMatch(/SocketError|other side closed|ECONNRESET/);
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/^trellis_gateway_worker_restarts_total 1$/m);
    const res = await fetch(`${gw.url}/app/after`);
    expect(res.status).toBe(200);
  });

  it('drains every worker on SIGTERM: in-flight requests finish, every access line is written', async () => {
    // Slow requests spread over both workers (one connection each, handed out in turn).
    const clients = Array.from({ length: 4 }, () => new Client(gw.url));
    const inFlight = clients.map((c, i) =>
      c.request({ path: `/slow/drain-${i}?ms=1500`, method: 'GET' }).then(async (r) => {
        await r.body.text();
        return r.statusCode;
      }),
    );
    await waitUntil(
      () => slow.requests.filter((r) => r.url.includes('ms=1500')).length === 4,
      'four slow requests in flight',
    );
    gw.child.kill('SIGTERM');
    expect(await Promise.all(inFlight)).toEqual([200, 200, 200, 200]);
    const { code } = await gw.exited;
    expect(code).toBe(0);
    await Promise.all(clients.map((c) => c.close()));
    const access = gw
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"access"') && l.includes('/slow/drain-'));
    expect(access).toHaveLength(4);
  });
});
