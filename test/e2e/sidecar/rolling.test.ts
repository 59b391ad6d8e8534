import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  freePort,
  type GatewayProcess,
  spawnCli,
  startGatewayCli,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

/**
 * A rolling restart of whole sidecars (sidecar and app together, as a deployment replaces an
 * instance) under 200 req/s. One sidecar cannot be restarted without a moment in which its
 * port has no listener (node 20 has no SO_REUSEPORT to hand the port over), so the tested pattern
 * is the usual one: two instances behind a load balancer, here the Trellis gateway, restarted one
 * at a time. The sidecar's part is its shutdown order: on SIGTERM it stops accepting, answers
 * every request it accepted, then stops its app; and on start it opens its inbound port only once
 * the app is healthy. The balancer's part is to retry a refused connect (or a reset keep-alive
 * connection) on the other instance and to health-check. Together: no request fails at the client.
 */

let dir: TempDir;
let gateway: GatewayProcess | undefined;
const running = new Map<string, ReturnType<typeof spawnCli>>();
afterEach(async () => {
  await gateway?.stop('SIGTERM');
  gateway = undefined;
  for (const p of running.values()) await p.stop('SIGTERM', 20_000);
  running.clear();
  dir?.cleanup();
});

const APP = `import { createServer } from 'node:http';
const server = createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ instance: process.env.INSTANCE, pid: process.pid }));
});
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

describe('trellis sidecar: rolling restart of whole sidecars', () => {
  it('2 instances behind the gateway, each restarted twice under 200 req/s: zero failed requests', async () => {
    dir = tempDir('trellis-sidecar-rolling-');
    const app = join(dir.path, 'app.mjs');
    writeFileSync(app, APP);
    const instances = ['a', 'b'];
    const inbound: Record<string, number> = {};
    for (const name of instances) {
      mkdirSync(join(dir.path, name));
      inbound[name] = await freePort();
      writeFileSync(
        join(dir.path, name, 'sidecar.yaml'),
        `app: { name: ${name}, port: ${await freePort()}, healthPath: /healthz, healthInterval: 200ms, env: { INSTANCE: ${name} } }
listen: { host: 127.0.0.1, port: ${inbound[name]} }
api: { port: 0 }
admin: { enabled: false }
accessLog: false
drainTimeout: 10s
`,
      );
    }
    const start = async (name: string) => {
      const proc = spawnCli([
        'sidecar',
        '-c',
        join(dir.path, name, 'sidecar.yaml'),
        '--',
        process.execPath,
        app,
      ]);
      running.set(name, proc);
      await proc.waitForOutput(/"msg":"sidecar started"/, 30_000);
    };
    for (const name of instances) await start(name);

    gateway = await startGatewayCli(
      join(dir.path, 'gateway.yaml'),
      `listen: { port: 0, host: 127.0.0.1 }
accessLog: false
services:
  app:
    upstreams: [${instances.map((n) => `'http://127.0.0.1:${inbound[n]}'`).join(', ')}]
    # A refused connect or a reset keep-alive connection goes to the other instance at once.
    retry: { attempts: 3, backoff: { base: 5ms, max: 20ms }, budget: { ratio: 1 }, on: [connect-failure, reset, '503'] }
    healthCheck: { path: /healthz, interval: 200ms, timeout: 1s, unhealthyThreshold: 1, healthyThreshold: 1 }
    outlier: { consecutive5xx: 0, consecutiveConnectFailures: 0 }
routes:
  - match: { pathPrefix: / }
    proxy: { service: app }
`,
    );
    const client = new Pool(gateway.url, { connections: 16 });
    const outcomes: Promise<number | string>[] = [];
    const seen = new Set<string>();
    const one = async () => {
      try {
        const res = await client.request({ method: 'GET', path: '/hello' });
        const body = await res.body.text();
        if (res.statusCode === 200) seen.add((JSON.parse(body) as { instance: string }).instance);
        return res.statusCode;
      } catch (err) {
        return String(err);
      }
    };
    let loading = true;
    // 200 req/s: one request every 5 ms, not waiting for the previous answer.
    const load = (async () => {
      const t0 = performance.now();
      for (let i = 0; loading; i++) {
        outcomes.push(one());
        const wait = t0 + (i + 1) * 5 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    })();
    const served = () => seen.size;

    await new Promise((r) => setTimeout(r, 500));
    for (let round = 0; round < 2; round++) {
      for (const name of instances) {
        seen.clear();
        const old = running.get(name)!;
        expect(await old.stop('SIGTERM', 20_000)).toBe(0);
        await start(name);
        // Both instances answer again before the next one goes.
        await waitUntil(() => served() === 2, `${name} back in the rotation`, 20_000);
      }
    }
    // Load goes on a little after the last restart, and for at least 1,200 requests in all: a
    // fast machine restarts the four sidecars in under five seconds.
    await new Promise((r) => setTimeout(r, 300));
    await waitUntil(() => outcomes.length >= 1_200, '1,200 requests sent', 20_000);
    loading = false;
    await load;
    const all = await Promise.all(outcomes);
    await client.close();
    const failed = all.filter((s) => s !== 200);
    console.log(
      `rolling restart of whole sidecars: ${all.length} requests at ~200 req/s, 4 restarts, ${failed.length} not 200`,
    );
    expect(all.length).toBeGreaterThan(1000);
    expect(failed).toEqual([]);
  }, 180_000);
});
