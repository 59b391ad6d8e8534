import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, freePort, spawnCli, type TempDir, tempDir, waitUntil } from '../support/index.js';

/**
 * Reloading one http workload under load, through the real `trellis host`: its module is
 * rewritten while clients keep requesting it; the new version starts, traffic switches, the old
 * drains, and not one request fails. The other workload is not restarted.
 */

let dir: TempDir;
let host: CliProcess;
let port: number;
let admin: number;

const version = (v: string) =>
  `export async function fetch(req) {
  // A little latency so requests are in flight when the switch happens.
  await new Promise((r) => setTimeout(r, 5));
  return Response.json({ version: '${v}' });
}`;

beforeAll(async () => {
  dir = tempDir('trellis-host-reload-');
  port = await freePort();
  admin = await freePort();
  dir.write('orders.mjs', version('v1'));
  dir.write('other.mjs', `export default { fetch: () => new Response('other') };`);
  dir.write(
    'host.yaml',
    `listen: { host: 127.0.0.1, port: ${port} }
admin: { port: ${admin} }
workloads:
  orders: { kind: http, module: ./orders.mjs, mount: /orders }
  other: { kind: http, module: ./other.mjs, mount: /other }
`,
  );
  host = spawnCli(['host', '-c', join(dir.path, 'host.yaml')]);
  await host.waitForOutput(/"msg":"host started"/, 45_000);
}, 60_000);

afterAll(async () => {
  const code = await host?.stop();
  dir?.cleanup();
  expect(code).toBe(0);
}, 30_000);

describe('trellis host reload', () => {
  it('replaces one http workload under load with zero failed requests, leaving the other untouched', async () => {
    const seen = new Map<string, number>();
    const failures: string[] = [];
    let stop = false;
    const client = async () => {
      while (!stop) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/orders/`);
          if (res.status !== 200) {
            failures.push(`${res.status} ${await res.text()}`);
            continue;
          }
          const { version: v } = (await res.json()) as { version: string };
          seen.set(v, (seen.get(v) ?? 0) + 1);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const clients = Array.from({ length: 8 }, client);
    await waitUntil(() => (seen.get('v1') ?? 0) > 50, 'load on v1');
    const before = (await (await fetch(`http://127.0.0.1:${admin}/admin/services`)).json()) as {
      workloads: Record<string, { restarts: number; port: number }>;
    };
    dir.write('orders.mjs', version('v2'));
    await waitUntil(() => (seen.get('v2') ?? 0) > 50, 'load on v2', 30_000);
    await host.waitForOutput(/"workload":"orders".*"msg":"workload reloaded"/);
    stop = true;
    await Promise.all(clients);
    expect(failures).toEqual([]);
    const after = (await (await fetch(`http://127.0.0.1:${admin}/admin/services`)).json()) as typeof before;
    // The other workload kept its worker (same loopback port, no restart).
    expect(after.workloads.other).toMatchObject({ restarts: 0, port: before.workloads.other!.port });
    expect(after.workloads.orders!.port).not.toBe(before.workloads.orders!.port);
  }, 60_000);
});
