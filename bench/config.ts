/**
 * `npm run bench -- config [sqlite,postgres,redis,etcd] [--changes 50] [--clients 50]`: change
 * propagation of the External Configuration Store, from `set` until each of 50 watching clients
 * has the new version, p50 / p99 / max, on every KeyValueStore backend (target p99 <= 100 ms).
 *
 * Topology: one `trellis config serve` (in this process) over the backend, 50 ConfigClients
 * following it over SSE (also in this process: the figures include their CPU on the same event
 * loop, which makes them an upper bound). Writes are bounded in count and each waits for all
 * clients with a 5 s deadline.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { type ConfigClient, createConfigClient } from '../src/config/client.js';
import { ConfigRepository } from '../src/config/repository.js';
import { startConfigServer } from '../src/config/server.js';
import { openKeyValueStore } from '../src/stores/kv/index.js';
import { serviceUrl } from '../src/testing/services.js';
import { table } from './_support/table.js';

const { values, positionals } = parseArgs({
  options: { changes: { type: 'string' }, clients: { type: 'string' } },
  allowPositionals: true,
});
const CHANGES = Number(values.changes ?? 50);
const CLIENTS = Number(values.clients ?? 50);
const wanted = (positionals[0] ?? 'sqlite,postgres,redis,etcd').split(',');

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(backend: string, url: string) {
  const run = Math.random().toString(36).slice(2, 8);
  const repo = new ConfigRepository(await openKeyValueStore(url), { root: `bench/${run}/` });
  const server = await startConfigServer({ api: repo });
  const clients: ConfigClient[] = [];
  const latencies: number[] = [];
  const writes: number[] = [];
  let expected = -1;
  let arrived = 0;
  let allArrived: (() => void) | undefined;
  try {
    await repo.set('bench/probe', JSON.stringify({ i: -1, sentAt: 0 }));
    for (let c = 0; c < CLIENTS; c++) {
      const client = await createConfigClient({ source: server.url, prefix: 'bench/' });
      client.subscribe((change) => {
        const v = change.document?.value as { i: number; sentAt: number } | undefined;
        if (!v || v.i !== expected) return;
        latencies.push(performance.now() - v.sentAt);
        if (++arrived === CLIENTS) allArrived?.();
      });
      clients.push(client);
    }
    let missed = 0;
    for (let i = 0; i < CHANGES; i++) {
      expected = i;
      arrived = 0;
      const done = new Promise<boolean>((resolve) => {
        allArrived = () => resolve(true);
        setTimeout(() => resolve(false), 5000).unref();
      });
      const sentAt = performance.now();
      await repo.set('bench/probe', JSON.stringify({ i, sentAt }));
      writes.push(performance.now() - sentAt);
      if (!(await done)) missed += CLIENTS - arrived;
    }
    latencies.sort((a, b) => a - b);
    writes.sort((a, b) => a - b);
    return {
      setP50: pct(writes, 50),
      backend,
      samples: latencies.length,
      missed,
      p50: pct(latencies, 50),
      p99: pct(latencies, 99),
      max: latencies.at(-1) ?? Number.NaN,
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
    await repo.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-config-'));
const rows: (string | number)[][] = [];
try {
  for (const backend of wanted) {
    const url =
      backend === 'sqlite'
        ? `sqlite:${join(dir, 'config.db')}`
        : await serviceUrl(backend as 'postgres' | 'redis' | 'etcd');
    if (!url) {
      console.log(`${backend}: not reachable, skipped`);
      continue;
    }
    process.stdout.write(`${backend}: ${CHANGES} changes to ${CLIENTS} watching clients… `);
    const r = await measure(backend, url);
    console.log(r.p99 <= 100 ? 'PASS' : 'MISS');
    rows.push([
      r.backend,
      r.samples,
      r.missed,
      r.setP50,
      r.p50,
      r.p99,
      r.max,
      r.p99 <= 100 ? 'PASS' : 'MISS',
    ]);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  `\nChange propagation, set -> ${CLIENTS} SSE clients via trellis config serve (ms; target p99 <= 100)\n`,
);
console.log(
  table(['backend', 'samples', 'missed', 'set p50 ms', 'p50 ms', 'p99 ms', 'max ms', 'p99 <= 100'], rows),
);
process.exit(0);
