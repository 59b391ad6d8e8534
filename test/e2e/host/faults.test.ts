import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openMessageQueue } from '../../../src/stores/queue/index.js';
import type { MessageQueue } from '../../../src/stores/types.js';
import {
  type CliProcess,
  freePort,
  runCli,
  spawnCli,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

/**
 * Compute Resource Consolidation faults, through the real `trellis host`: a workload that spins
 * forever, one that allocates until its heap limit, one that throws on every message, one that
 * calls process.exit (thread and process), and a task whose worker dies or overruns. Each is
 * contained, restarted per policy and reported, while the steady workload keeps answering every
 * request with 200 (its error count stays zero).
 */

interface Status {
  state: string;
  restarts: number;
  handled: number;
  errors: number;
  lastExit?: { reason: string; message: string };
}

let dir: TempDir;
let host: CliProcess;
let port: number;
let admin: number;
let queue: MessageQueue;
const topic = `host-faults-${Math.random().toString(36).slice(2, 8)}`;

const status = async (): Promise<Record<string, Status>> =>
  (
    (await (await fetch(`http://127.0.0.1:${admin}/admin/services`)).json()) as {
      workloads: Record<string, Status>;
    }
  ).workloads;

/** Requests /steady in a loop until stopped; counts answers that were not 200. */
function steadyLoad() {
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (!stop) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/steady/`);
        await res.text();
        if (res.status === 200) ok++;
        else failures.push(String(res.status));
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  })();
  return {
    async end() {
      stop = true;
      await loop;
      return { ok, failures };
    },
  };
}

beforeAll(async () => {
  dir = tempDir('trellis-host-');
  port = await freePort();
  admin = await freePort();
  dir.write('steady.mjs', `export default { fetch: () => Response.json({ ok: true }) };`);
  dir.write(
    'spin.mjs',
    `export function fetch(req) { if (new URL(req.url).pathname === '/go') for (;;) {} return new Response('idle'); }`,
  );
  dir.write(
    'alloc.mjs',
    `const keep = [];
export function fetch(req) {
  if (new URL(req.url).pathname === '/go') for (;;) keep.push(new Array(1e5).fill({ x: Math.random() }));
  return new Response('idle');
}`,
  );
  dir.write(
    'exit.mjs',
    `export function fetch(req) { if (new URL(req.url).pathname === '/go') process.exit(3); return new Response('idle'); }`,
  );
  dir.write(
    'records.mjs',
    `import { appendFileSync } from 'node:fs';
export default (payload, delivery, env) => appendFileSync(env.config.file, payload + '\\n');`,
  );
  dir.write(
    'uncaught.mjs',
    `export function fetch(req) { if (new URL(req.url).pathname === '/go') setImmediate(() => { throw new Error('boom'); }); return new Response('idle'); }`,
  );
  dir.write('throws.mjs', `export default (payload) => { throw new Error('bad message ' + payload); };`);
  dir.write(
    'tasks.mjs',
    `export default (input) => { if (input === 'exit') process.exit(1); if (input === 'spin') for (;;) {} return input * 2; };`,
  );
  dir.write(
    'caller.mjs',
    `export async function fetch(req, env) {
  const input = new URL(req.url).searchParams.get('input');
  const t0 = performance.now();
  try {
    return Response.json({ value: await env.runTask('tasks', input === 'exit' || input === 'spin' ? input : Number(input)) });
  } catch (err) {
    return Response.json({ code: err.code, message: err.message, ms: performance.now() - t0 }, { status: 500 });
  }
}`,
  );
  const q = `sqlite:${join(dir.path, 'queue.db')}`;
  queue = await openMessageQueue(q);
  dir.write(
    'host.yaml',
    `listen: { host: 127.0.0.1, port: ${port} }
admin: { port: ${admin} }
drainTimeout: 2s
workloads:
  steady: { kind: http, module: ./steady.mjs, mount: /steady }
  spin:
    kind: http
    module: ./spin.mjs
    mount: /spin
    limits: { eventLoop: 1s }
  alloc:
    kind: http
    module: ./alloc.mjs
    mount: /alloc
    limits: { heap: 32mb }
  exit: { kind: http, module: ./exit.mjs, mount: /exit, restart: { maxRestarts: 1, window: 5m } }
  uncaught-process: { kind: http, module: ./uncaught.mjs, mount: /uncaught, isolation: process }
  exit-process: { kind: http, module: ./exit.mjs, mount: /exitp, isolation: process }
  throws: { kind: consumer, module: ./throws.mjs, queue: "${q}", topic: ${topic}, group: g, concurrency: 2, maxDeliver: 2 }
  records: { kind: consumer, module: ./records.mjs, queue: "${q}", topic: ${topic}, group: records, config: { file: "${join(dir.path, 'records.txt')}" } }
  tasks: { kind: taskPool, module: ./tasks.mjs, size: 2, runTimeout: 1s, queueTimeout: 5s }
  caller: { kind: http, module: ./caller.mjs, mount: /call, dependsOn: [tasks] }
`,
  );
  host = spawnCli(['host', '-c', join(dir.path, 'host.yaml')]);
  await host.waitForOutput(/"msg":"host started"/, 45_000);
}, 60_000);

afterAll(async () => {
  const code = await host?.stop();
  await queue?.close();
  dir?.cleanup();
  expect(code).toBe(0);
}, 30_000);

describe('trellis host faults', () => {
  it('contains each fault, restarts per policy and reports it, while the steady workload never fails', async () => {
    const load = steadyLoad();
    // Spins forever: the event-loop watchdog ends it after 1 s and it comes back.
    void fetch(`http://127.0.0.1:${port}/spin/go`).catch(() => {});
    // Allocates until its 32 MB heap is exhausted.
    void fetch(`http://127.0.0.1:${port}/alloc/go`).catch(() => {});
    // Calls process.exit, in a thread and in a child process.
    void fetch(`http://127.0.0.1:${port}/exitp/go`).catch(() => {});
    void fetch(`http://127.0.0.1:${port}/exit/go`).catch(() => {});
    // An exception nothing catches, in a child process.
    void fetch(`http://127.0.0.1:${port}/uncaught/go`).catch(() => {});
    // Throws on every message.
    for (let i = 0; i < 5; i++) await queue.publish(topic, `m${i}`);

    const s = await waitUntil(
      async () => {
        const s = await status();
        return s.spin!.restarts >= 1 &&
          s.spin!.state === 'ready' &&
          s.alloc!.restarts >= 1 &&
          s.alloc!.state === 'ready' &&
          s['exit-process']!.restarts >= 1 &&
          s['exit-process']!.state === 'ready' &&
          s.exit!.state === 'ready' &&
          s['uncaught-process']!.restarts >= 1 &&
          s['uncaught-process']!.state === 'ready' &&
          s.throws!.errors >= 5
          ? s
          : undefined;
      },
      'every faulty workload restarted and reported',
      40_000,
    );
    expect(s.spin!.lastExit?.reason).toBe('event-loop');
    expect(s.alloc!.lastExit?.reason).toBe('heap');
    expect(s.exit!.lastExit).toMatchObject({ reason: 'exit', message: 'exited with code 3' });
    expect(s['exit-process']!.lastExit?.reason).toBe('exit');
    expect(s['uncaught-process']!.lastExit).toMatchObject({ reason: 'uncaught', message: 'boom' });
    expect(s.throws!.state).toBe('ready');
    // Another group on the same topic gets every message, unaffected by the throwing one.
    await waitUntil(async () => (await status()).records!.handled >= 5, 'records handled all five', 20_000);
    expect((await status()).records).toMatchObject({ errors: 0, restarts: 0 });
    expect(readFileSync(join(dir.path, 'records.txt'), 'utf8').trim().split('\n').sort()).toEqual([
      'm0',
      'm1',
      'm2',
      'm3',
      'm4',
    ]);
    expect(s.throws!.restarts).toBe(0);

    // The restarted workloads serve again.
    for (const path of ['spin', 'alloc', 'exit', 'exitp']) {
      const res = await fetch(`http://127.0.0.1:${port}/${path}/`);
      expect([path, res.status, await res.text()]).toEqual([path, 200, 'idle']);
    }

    // Crash-loop cut-off: a second exit within the window leaves `exit` failed, not restarting.
    void fetch(`http://127.0.0.1:${port}/exit/go`).catch(() => {});
    await waitUntil(async () => (await status()).exit!.state === 'failed', 'exit stopped restarting', 20_000);
    expect(host.output()).toContain('TRELLIS_E_HOST_CRASH_LOOP');

    const { ok, failures } = await load.end();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
    const after = await status();
    expect(after.steady).toMatchObject({ state: 'ready', restarts: 0, errors: 0 });

    const text = await runCli(['host', 'status', '--admin', `127.0.0.1:${admin}`]);
    expect(text.stdout).toMatch(/spin\s+http\s+ready\s+[1-9]/);
    expect(text.stdout).toMatch(/exit\s+http\s+failed/);
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    expect(metrics).toMatch(/trellis_host_workload_restarts\{workload="alloc",kind="http"\} [1-9]/);
  }, 90_000);

  it('settles a task whose worker dies at once with a typed error, and ends an overrunning one', async () => {
    const good = await fetch(`http://127.0.0.1:${port}/call/?input=21`);
    expect(await good.json()).toEqual({ value: 42 });

    const crashed = (await (await fetch(`http://127.0.0.1:${port}/call/?input=exit`)).json()) as {
      code: string;
      ms: number;
    };
    expect(crashed.code).toBe('TRELLIS_E_HOST_WORKER_CRASHED');
    // Settled on the worker's exit event (measured inside the caller; generous for a loaded machine).
    expect(crashed.ms).toBeLessThan(1000);

    const spun = (await (await fetch(`http://127.0.0.1:${port}/call/?input=spin`)).json()) as {
      code: string;
    };
    expect(spun.code).toBe('TRELLIS_E_HOST_TASK_TIMEOUT');

    // The pool replaced both workers and serves again.
    await waitUntil(async () => (await status()).tasks!.state === 'ready', 'the pool is whole again', 20_000);
    const again = await fetch(`http://127.0.0.1:${port}/call/?input=5`);
    expect(await again.json()).toEqual({ value: 10 });
  }, 60_000);
});
