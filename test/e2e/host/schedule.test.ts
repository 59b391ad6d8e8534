import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type CliProcess, freePort, spawnCli, tempDir, waitUntil } from '../support/index.js';

/**
 * A leader-only schedule through the real `trellis host`: two hosts declare the same job with
 * `leader:` on one lease store; only one of them runs it.
 */

const dir = tempDir('trellis-host-schedule-');
const hosts: CliProcess[] = [];

afterAll(async () => {
  const codes = await Promise.all(hosts.map((h) => h.stop()));
  dir.cleanup();
  expect(codes).toEqual([0, 0]);
}, 30_000);

describe('trellis host schedule', () => {
  it('runs a leader-only job on one host of two', async () => {
    const runs = join(dir.path, 'runs.txt');
    dir.write(
      'job.mjs',
      `import { appendFileSync } from 'node:fs';
export default (env) => appendFileSync(${JSON.stringify(runs)}, env.config.id + '\\n');`,
    );
    for (const id of ['a', 'b']) {
      dir.write(
        `${id}.yaml`,
        `admin: { port: ${await freePort()} }
workloads:
  nightly:
    kind: schedule
    module: ./job.mjs
    cron: "* * * * * *"
    config: { id: ${id} }
    leader: { store: "sqlite:${join(dir.path, 'leases.db')}", group: nightly }
`,
      );
      hosts.push(spawnCli(['host', '-c', join(dir.path, `${id}.yaml`)]));
    }
    await Promise.all(hosts.map((h) => h.waitForOutput(/"msg":"host started"/, 45_000)));
    const lines = await waitUntil(
      () => {
        try {
          const l = readFileSync(runs, 'utf8').trim().split('\n');
          return l.length >= 4 ? l : undefined;
        } catch {
          return undefined;
        }
      },
      'four runs',
      30_000,
    );
    expect(new Set(lines).size).toBe(1);
  }, 60_000);
});
