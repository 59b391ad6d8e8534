import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { portListens } from '../../../src/sidecar/health.js';
import { type TempDir, tempDir, waitUntil } from '../support/index.js';
import { PYTHON_APP, pythonSidecarYaml, type SidecarProcess, startSidecarCli } from './support.js';

/**
 * The lifecycle under load: the app crashing and being restarted while clients keep calling,
 * and SIGTERM while requests are in flight. Clients must never see a refused connection: while
 * the app is away the sidecar answers 503 with Retry-After, and every accepted request is answered.
 */

let dir: TempDir;
let sidecar: SidecarProcess | undefined;
afterEach(async () => {
  await sidecar?.stop('SIGTERM', 20_000);
  sidecar = undefined;
  dir?.cleanup();
});

interface Outcome {
  status?: number;
  retryAfter?: string | null;
  code?: string;
  error?: string;
}

async function call(url: string): Promise<Outcome> {
  try {
    const res = await fetch(url);
    const text = await res.text();
    const code = res.status >= 500 ? (JSON.parse(text) as { code?: string }).code : undefined;
    return { status: res.status, retryAfter: res.headers.get('retry-after'), ...(code ? { code } : {}) };
  } catch (err) {
    return { error: String((err as Error & { cause?: Error }).cause ?? err) };
  }
}

async function appPid(url: string): Promise<string | null> {
  const res = await fetch(`${url}/hello`);
  await res.arrayBuffer();
  return res.status === 200 ? res.headers.get('x-app-pid') : null;
}

describe('trellis sidecar lifecycle under load', () => {
  it('10 app restarts under 200 req/s: no refused connection, only 503 + Retry-After (and the crashed exchanges) while it is away', async () => {
    dir = tempDir('trellis-sidecar-');
    sidecar = await startSidecarCli(dir.path, pythonSidecarYaml(), ['python3', PYTHON_APP]);
    const url = sidecar.url;
    const outcomes: Promise<Outcome>[] = [];
    let loading = true;
    // 200 req/s: one request every 5 ms on a fixed schedule, not waiting for answers.
    const load = (async () => {
      const t0 = performance.now();
      for (let i = 0; loading; i++) {
        outcomes.push(call(`${url}/hello`));
        const wait = t0 + (i + 1) * 5 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    })();
    const RESTARTS = 10;
    const crashes: Promise<Outcome>[] = [];
    for (let i = 0; i < RESTARTS; i++) {
      const before = await waitUntil(() => appPid(url), 'the app serving', 30_000);
      crashes.push(call(`${url}/crash`));
      await waitUntil(
        async () => {
          const pid = await appPid(url);
          return pid !== null && pid !== before;
        },
        `restart ${i + 1}`,
        30_000,
      );
    }
    loading = false;
    await load;
    const all = await Promise.all(outcomes);
    const errors = all.filter((o) => o.error !== undefined);
    const unavailable = all.filter((o) => o.status === 503);
    const other = all.filter(
      (o) => o.status !== undefined && o.status !== 200 && o.status !== 503 && o.status !== 502,
    );
    console.log(
      `sidecar restarts under load: ${all.length} requests, ${all.filter((o) => o.status === 200).length} ok, ${unavailable.length} 503, ${all.filter((o) => o.status === 502).length} 502 (in flight at a crash), ${errors.length} client errors`,
    );
    expect(errors).toEqual([]);
    expect(other).toEqual([]);
    for (const o of unavailable) expect(o.retryAfter).toBe('1');
    // A 502 only for an exchange the app took and then died on; a refused connect is a 503.
    for (const o of all.filter((x) => x.status === 502)) expect(o.code).toBe('TRELLIS_E_UPSTREAM_RESET');
    // The crash requests themselves never got an answer from the app: the sidecar says so (502).
    for (const c of await Promise.all(crashes)) expect(c.status).toBe(502);
    const metrics = await fetch(`${sidecar.adminUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(new RegExp(`trellis_sidecar_app_restarts_total ${RESTARTS}`));
  }, 150_000);

  it("the app's port refuses between health checks (it closed its listener): 503 + Retry-After, not 502", async () => {
    dir = tempDir('trellis-sidecar-');
    const app = join(dir.path, 'closing-app.mjs');
    // An app that stays alive but stops listening on /close: only a health check could tell,
    // and the next one is a minute away, so the gate is still open when the next request comes.
    writeFileSync(
      app,
      `import { createServer } from 'node:http';
const server = createServer((req, res) => {
  if (req.url === '/close') {
    res.once('finish', () => { server.close(); server.closeAllConnections(); });
    return res.end('closing');
  }
  res.end(req.url === '/healthz' ? 'ok' : 'hello');
});
server.listen(Number(process.env.PORT), '127.0.0.1');
setInterval(() => {}, 1000);
process.on('SIGTERM', () => process.exit(0));
`,
    );
    const started = await startSidecarCli(
      dir.path,
      `app: { name: closing, port: APP_PORT, healthPath: /healthz, healthInterval: 60s }
listen: { host: 127.0.0.1, port: 0 }
api: { port: 0 }
`,
      [process.execPath, app],
    );
    sidecar = started;
    const url = started.url;
    expect(await (await fetch(`${url}/hello`)).text()).toBe('hello');
    expect(await (await fetch(`${url}/close`)).text()).toBe('closing');
    await waitUntil(async () => !(await portListens(started.appPort)), 'the app port closed', 10_000);
    for (const method of ['GET', 'POST']) {
      const res = await fetch(`${url}/hello`, { method, ...(method === 'POST' ? { body: '{}' } : {}) });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(((await res.json()) as { code: string }).code).toBe('TRELLIS_E_SIDECAR_APP_UNAVAILABLE');
    }
  }, 60_000);

  it('SIGTERM under load: every accepted request is answered, then the app stops and the sidecar exits with its status', async () => {
    dir = tempDir('trellis-sidecar-');
    sidecar = await startSidecarCli(dir.path, pythonSidecarYaml(), ['python3', PYTHON_APP]);
    const N = 20;
    const inFlight = Array.from({ length: N }, () => call(`${sidecar!.url}/slow?ms=800`));
    await waitUntil(
      () => (sidecar!.output().match(/slow request started/g) ?? []).length === N,
      'every slow request reaching the app',
      30_000,
    );
    const code = sidecar.stop('SIGTERM', 30_000);
    const answered = await Promise.all(inFlight);
    expect(answered.map((o) => o.status ?? o.error)).toEqual(Array.from({ length: N }, () => 200));
    expect(await code).toBe(0);
    const out = sidecar.output();
    // The order: inbound drained before the app was told to stop.
    expect(out.indexOf('draining inbound requests')).toBeLessThan(out.indexOf('"state":"stopping"'));
  }, 60_000);
});
