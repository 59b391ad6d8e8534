import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type CliProcess, freePort, spawnCli, tempDir } from '../support/index.js';

/**
 * A module's lifecycle hooks through the real `trellis host`: `start(env)` runs before the
 * workload is ready (its first request finds what it opened), `stop(env)` at the end of the drain,
 * after the last request; a `start` that throws fails the start and says why.
 */

const dir = tempDir('trellis-host-hooks-');
let host: CliProcess | undefined;
afterAll(async () => {
  await host?.stop();
  dir.cleanup();
});

describe('trellis host module hooks', () => {
  it('runs start before the first request and stop after the last, once each', async () => {
    const log = join(dir.path, 'log.txt');
    dir.write(
      'svc.mjs',
      `import { appendFileSync } from 'node:fs';
const note = (line) => appendFileSync(${JSON.stringify(log)}, line + '\\n');
let opened;
export async function start(env) {
  await new Promise((r) => setTimeout(r, 300));
  opened = env.config.greeting;
  note('start');
}
export async function stop() { note('stop'); }
export default { fetch: () => { note('request'); return new Response(opened ?? 'not started'); } };
`,
    );
    const port = await freePort();
    // No listen: and no mounted workload: the host must not take the shared default port 8080.
    dir.write(
      'host.yaml',
      `admin: { port: ${await freePort()} }
workloads:
  svc:
    kind: http
    module: ./svc.mjs
    listen: { host: 127.0.0.1, port: ${port} }
    config: { greeting: hello }
`,
    );
    host = spawnCli(['host', '-c', join(dir.path, 'host.yaml')]);
    const started = JSON.parse(await host.waitForOutput(/"msg":"host started"/, 45_000)) as {
      ports: Record<string, number>;
    };
    expect(started.ports.main).toBeGreaterThan(0);
    expect(started.ports.main).not.toBe(8080);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('hello');
    expect(await host.stop()).toBe(0);
    host = undefined;
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['start', 'request', 'stop']);
  }, 60_000);

  it('a start that throws fails the start with its message', async () => {
    dir.write(
      'bad.mjs',
      `export async function start() { throw new Error('cannot open the database'); }
export default { fetch: () => new Response('never') };
`,
    );
    dir.write(
      'bad.yaml',
      `listen: { host: 127.0.0.1, port: ${await freePort()} }
admin: { port: ${await freePort()} }
workloads:
  bad:
    kind: http
    module: ./bad.mjs
    listen: { host: 127.0.0.1, port: ${await freePort()} }
    restart: { maxRestarts: 1, window: 1m, backoff: { base: 10ms, max: 20ms } }
`,
    );
    const proc = spawnCli(['host', '-c', join(dir.path, 'bad.yaml')]);
    // A crash loop at start: the host exits with the error (stop() is only the safety net).
    const timer = setTimeout(() => void proc.stop('SIGKILL'), 30_000);
    const { code } = await proc.exited;
    clearTimeout(timer);
    expect(code).not.toBe(0);
    expect(proc.output()).toContain('cannot open the database');
  }, 60_000);
});
