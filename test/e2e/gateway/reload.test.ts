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

// Hot reload under load, rejected reloads, and draining on SIGTERM, through the real CLI.
describe('trellis gateway: reload and drain', () => {
  let dir: TempDir;
  let blue: Origin;
  let green: Origin;
  let slow: Origin;
  let gw: GatewayProcess;

  const config = (color: 'blue' | 'green', extra = '') => `listen: { port: 0, host: 127.0.0.1 }
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
      setTimeout(() => res.end(`slow done ${req.url}`), 1_500);
    });
    gw = await startGatewayCli(`${dir.path}/gateway.yaml`, config('blue'));
  });

  afterAll(async () => {
    await gw?.stop('SIGKILL');
    await Promise.all([blue?.close(), green?.close(), slow?.close()]);
    dir?.cleanup();
  });

  const version = async () =>
    ((await (await fetch(`${gw.adminUrl}/admin/config`)).json()) as { version: number; lastReload: unknown })
      .version;

  it('applies 20 reloads while a load generator runs, with zero failed requests', async () => {
    const client = new Client(gw.url, { pipelining: 1 });
    let connects = 0;
    client.on('connect', () => connects++);
    const failures: string[] = [];
    const seen = new Set<string>();
    let requests = 0;
    let stop = false;
    const worker = async () => {
      // Bounded: stops when the reloads are done, or after 20,000 requests at most.
      while (!stop && requests < 20_000) {
        requests++;
        try {
          const r = await client.request({ path: '/app/x', method: 'GET' });
          const text = await r.body.text();
          if (r.statusCode !== 200) failures.push(`${r.statusCode} ${text}`);
          else seen.add((JSON.parse(text) as { origin: string }).origin);
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const workers = [worker(), worker(), worker(), worker()];
    const start = await version();
    for (let i = 1; i <= 20; i++) {
      writeFileSync(gw.file, config(i % 2 === 1 ? 'green' : 'blue', `# reload ${i}\n`));
      await waitUntil(async () => (await version()) === start + i, `reload ${i} to be applied`, 10_000);
    }
    stop = true;
    await Promise.all(workers);
    await client.close();
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(100);
    expect([...seen].sort()).toEqual(['blue', 'green']);
    // Keep-alive client connections survive reloads: one connection carried all of it.
    expect(connects).toBe(1);
  });

  it('rejects an invalid file with the validate messages and keeps serving the last good configuration', async () => {
    const before = await version();
    const served = (await (await fetch(`${gw.url}/app/x`)).json()) as { origin: string };
    writeFileSync(gw.file, `${config('blue')}  - match: { path: /broken }\n    proxy: { service: blu }\n`);
    const line = await gw.waitForOutput(/configuration rejected/);
    expect(line).toContain(
      `${gw.file}:12:23 routes[2].proxy.service: unknown service \\"blu\\" (did you mean \\"blue\\"?): define it under services:`,
    );
    const admin = (await (await fetch(`${gw.adminUrl}/admin/config`)).json()) as {
      version: number;
      lastReload: { ok: boolean; errors: string[] };
    };
    expect(admin.version).toBe(before);
    expect(admin.lastReload.ok).toBe(false);
    expect(admin.lastReload.errors).toEqual([
      `${gw.file}:12:23 routes[2].proxy.service: unknown service "blu" (did you mean "blue"?): define it under services:`,
    ]);
    const still = await fetch(`${gw.url}/app/x`);
    expect(still.status).toBe(200);
    expect(((await still.json()) as { origin: string }).origin).toBe(served.origin);
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/trellis_gateway_reloads_total\{result="rejected"\} [1-9]/);
  });

  it('reloads on SIGHUP', async () => {
    const before = await version();
    writeFileSync(gw.file, config('green', '# sighup\n'));
    gw.child.kill('SIGHUP');
    await waitUntil(async () => (await version()) > before, 'the SIGHUP reload');
  });

  it('drains on SIGTERM: the in-flight request finishes, then the process exits 0', async () => {
    const inFlight = fetch(`${gw.url}/slow/req`).then(async (r) => ({
      status: r.status,
      text: await r.text(),
    }));
    await waitUntil(() => slow.requests.length > 0, 'the slow request to reach the origin');
    const code = gw.stop('SIGTERM');
    expect(await inFlight).toEqual({ status: 200, text: 'slow done /slow/req' });
    expect(await code).toBe(0);
    await expect(fetch(`${gw.url}/app/x`)).rejects.toThrow();
  });
});
