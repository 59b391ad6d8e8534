import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openKeyValueStore } from '../../../src/stores/kv/index.js';
import { runCli, type TempDir, tempDir, waitUntil } from '../support/index.js';
import { PYTHON_APP, pythonSidecarYaml, type SidecarProcess, startSidecarCli } from './support.js';

/**
 * `trellis sidecar` end to end with apps in other languages: a Python app (standard library
 * only) that uses the state, publish and secrets APIs and receives deliveries, and a shell job
 * (curl) that writes state and exits.
 */

let dir: TempDir;
let sidecar: SidecarProcess | undefined;
afterEach(async () => {
  await sidecar?.stop('SIGTERM', 20_000);
  sidecar = undefined;
  dir?.cleanup();
});

describe('trellis sidecar with a Python app', () => {
  it('proxies inbound with request ids, and the app uses state (CAS), publish, deliveries and secrets', async () => {
    dir = tempDir('trellis-sidecar-');
    const delivered = join(dir.path, 'delivered.jsonl');
    sidecar = await startSidecarCli(
      dir.path,
      pythonSidecarYaml(`pubsub:
  subscriptions:
    - { topic: orders, path: /deliveries }
secrets:
  db: secret://env/SIDECAR_TEST_DB_PASSWORD
`),
      ['python3', PYTHON_APP],
      { DELIVERED_FILE: delivered, SIDECAR_TEST_DB_PASSWORD: 'hunter2' },
    );
    const hello = await fetch(`${sidecar.url}/hello`);
    expect(hello.status).toBe(200);
    const body = (await hello.json()) as { hello: string; requestId: string };
    expect(body.hello).toBe('python');
    expect(body.requestId).toBe(hello.headers.get('x-request-id'));

    // 20 concurrent increments through the app: compare-and-set loses none.
    const counts = await Promise.all(
      Array.from({ length: 20 }, () =>
        fetch(`${sidecar!.url}/count/visits`, { method: 'POST' }).then((r) => r.json()),
      ),
    );
    expect(counts.map((c) => (c as { count: number }).count).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );

    const published = await fetch(`${sidecar.url}/publish/orders`, { method: 'POST', body: '{"order":42}' });
    expect(published.status).toBe(202);
    const line = await waitUntil(() => {
      try {
        return readFileSync(delivered, 'utf8').trim();
      } catch {
        return '';
      }
    }, 'the delivery reaching the app');
    expect(JSON.parse(line)).toEqual({ body: '{"order":42}', count: '1' });

    const secret = await fetch(`${sidecar.url}/secret/db`).then((r) => r.json());
    expect(secret).toEqual({ name: 'db', value: 'hunter2' });
    expect(sidecar.output()).not.toContain('hunter2');

    // The platform API itself: OpenAPI without a token, everything else refused without one.
    const api = `http://127.0.0.1:${sidecar.ports.api}`;
    const doc = (await fetch(`${api}/v1/openapi.json`).then((r) => r.json())) as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(doc.paths)).toContain('/v1/state/{key}');
    const refused = await fetch(`${api}/v1/state/visits`);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { code: string }).code).toBe('TRELLIS_E_SIDECAR_API_UNAUTHORIZED');

    const metrics = await fetch(`${sidecar.adminUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/trellis_sidecar_app_state\{state="healthy"\} 1/);
    expect(metrics).toMatch(/trellis_sidecar_api_calls_total\{kind="state",status="200"\}/);
    expect(await sidecar.stop('SIGTERM', 20_000)).toBe(0);
  }, 60_000);

  it('a subscriber that crashes mid-delivery gets the message again after its restart', async () => {
    dir = tempDir('trellis-sidecar-');
    const delivered = join(dir.path, 'delivered.jsonl');
    sidecar = await startSidecarCli(
      dir.path,
      pythonSidecarYaml(`pubsub:
  subscriptions:
    - { topic: jobs, path: /deliveries, backoff: [100ms] }
`),
      ['python3', PYTHON_APP],
      { DELIVERED_FILE: delivered, CRASH_ON_FIRST_DELIVERY: join(dir.path, 'crashed') },
    );
    const published = await fetch(`${sidecar.url}/publish/jobs`, { method: 'POST', body: '{"job":7}' });
    expect(published.status).toBe(202);
    await sidecar.waitForOutput(/"msg":"the app exited: restarting"/, 30_000);
    const line = await waitUntil(
      () => {
        try {
          return readFileSync(delivered, 'utf8').trim();
        } catch {
          return '';
        }
      },
      'the redelivery after the crash',
      30_000,
    );
    const got = JSON.parse(line) as { body: string; count: string };
    expect(got.body).toBe('{"job":7}');
    expect(Number(got.count)).toBeGreaterThanOrEqual(2);
  }, 60_000);
});

describe('trellis sidecar with a shell app (curl)', () => {
  it('job mode: the app writes state with curl and exits 0, the sidecar exits 0 right after', async () => {
    dir = tempDir('trellis-sidecar-');
    const state = join(dir.path, 'state.db');
    const file = dir.write(
      'sidecar.yaml',
      `app: { name: job, port: 1, restart: never }
listen: { host: 127.0.0.1, port: 0 }
api: { port: 0 }
admin: { enabled: false }
state: sqlite:${state}
`,
    );
    const script =
      'curl -sf -X PUT -H "Authorization: Bearer $TRELLIS_SIDECAR_TOKEN" --data \'{"done":true}\' "$TRELLIS_SIDECAR_URL/v1/state/job/result"';
    const run = await runCli(['sidecar', '-c', file, '--', 'sh', '-c', script]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('"revision"');
    const kv = await openKeyValueStore(`sqlite:${state}`);
    expect((await kv.get('job/result'))?.value).toBe('{"done":true}');
    await kv.close();

    const failing = await runCli(['sidecar', '-c', file, '--', 'sh', '-c', 'exit 7']);
    expect(failing.code).toBe(7);
  }, 60_000);

  it("logs: json passes the app's output as JSON lines with its name", async () => {
    dir = tempDir('trellis-sidecar-');
    const file = dir.write(
      'sidecar.yaml',
      `app: { name: printer, port: 1, restart: never, logs: json }
listen: { host: 127.0.0.1, port: 0 }
api: { port: 0 }
admin: { enabled: false }
`,
    );
    const run = await runCli(['sidecar', '-c', file, '--', 'sh', '-c', 'echo hello out; echo oops >&2']);
    expect(run.code).toBe(0);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([expect.objectContaining({ app: 'printer', stream: 'stdout', msg: 'hello out' })]);
    expect(run.stderr).toContain('"app":"printer","stream":"stderr","msg":"oops"');
  }, 30_000);

  it('an app that never becomes healthy: a clear message and a non-zero exit', async () => {
    dir = tempDir('trellis-sidecar-');
    const file = dir.write(
      'sidecar.yaml',
      `app: { name: stuck, port: 1, healthPath: /healthz, startTimeout: 1s }
listen: { host: 127.0.0.1, port: 0 }
api: { port: 0 }
admin: { enabled: false }
`,
    );
    const run = await runCli(['sidecar', '-c', file, '--', 'sleep', '30']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('TRELLIS_E_SIDECAR_APP_UNHEALTHY');
    expect(run.stderr).toContain(
      'did not become healthy within 1000 ms: GET /healthz on port 1 never answered 2xx',
    );
  }, 30_000);
});
