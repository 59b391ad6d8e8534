/**
 * `npm run bench -- host [--n 20] [--duration 5]`: Compute Resource Consolidation. n small http
 * workloads (a JSON answer each) hosted by one `trellis host` (a worker thread each) vs n
 * separate Node processes of the same code, in one run:
 *
 * - total RSS (the host process, all its threads, vs the sum of the n processes) → target <= 0.35x;
 * - req/s and p99 of one workload under wrk while the others idle (the machine has 2 cores:
 *   that is what a core can serve either way) → req/s >= 0.9x, p99 <= 1.5x;
 * - the per-workload memory cost of each isolation (threads vs processes).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  benchDir,
  freePort,
  type MeasuredRun,
  measureRun,
  runBench,
  startNode,
  startTrellis,
  table,
  verdict,
  waitForHttp,
} from './_support/index.js';

const { values } = parseArgs({ options: { n: { type: 'string' }, duration: { type: 'string' } } });
const N = Number(values.n ?? 20);
const DURATION = Number(values.duration ?? 5);
const ROOT = join(import.meta.dirname, '..');

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

await runBench(async () => {
  const dir = benchDir();
  const module = join(dir, 'json.mjs');
  writeFileSync(module, `export default { fetch: () => Response.json({ ok: true, at: 'workload' }) };\n`);

  // The host: n workloads mounted on /w0 … /w(n-1).
  const hostPort = await freePort();
  const adminPort = await freePort();
  const yaml = [
    `listen: { host: 127.0.0.1, port: ${hostPort} }`,
    `admin: { port: ${adminPort} }`,
    'workloads:',
    ...Array.from(
      { length: N },
      (_, i) => `  w${i}: { kind: http, module: ${module}, mount: /w${i}, limits: { heap: 64mb } }`,
    ),
  ].join('\n');
  writeFileSync(join(dir, 'host.yaml'), yaml);
  const host = startTrellis('host', ['host', '-c', join(dir, 'host.yaml')], {
    cpu: 0,
    env: { TRELLIS_LOG_LEVEL: 'warn' },
  });
  await waitForHttp(`http://127.0.0.1:${adminPort}/readyz`, 60_000);
  for (let i = 0; i < N; i++) await waitForHttp(`http://127.0.0.1:${hostPort}/w${i}/`, 10_000);

  // The peers: n processes.
  const peerPorts: number[] = [];
  const peers = [];
  for (let i = 0; i < N; i++) {
    const port = await freePort();
    peerPorts.push(port);
    peers.push(
      startNode(`peer${i}`, [join(ROOT, 'bench/host-peer.mjs'), String(port), module], {
        cpu: 0,
      }),
    );
  }
  for (const p of peerPorts) await waitForHttp(`http://127.0.0.1:${p}/`, 30_000);

  const hostRss = rssBytes(host.pid);
  const peersRss = peers.reduce((a, p) => a + rssBytes(p.pid), 0);

  const wrk = (url: string) => ({ url, cpu: 1, threads: 1, connections: 32, durationS: DURATION });
  // Interleaved rounds so the shared machine's noise hits both alike.
  const hostRuns: MeasuredRun[] = [];
  const peerRuns: MeasuredRun[] = [];
  for (let round = 0; round < 2; round++) {
    hostRuns.push(await measureRun(host.pid, wrk(`http://127.0.0.1:${hostPort}/w${round}/`)));
    peerRuns.push(await measureRun(peers[round]!.pid, wrk(`http://127.0.0.1:${peerPorts[round]}/`)));
  }
  const med = (runs: MeasuredRun[], f: (r: MeasuredRun) => number) =>
    runs.map(f).sort((a, b) => a - b)[Math.floor(runs.length / 2)]!;
  const hRps = med(hostRuns, (r) => r.requestsPerSec);
  const pRps = med(peerRuns, (r) => r.requestsPerSec);
  const hP99 = med(hostRuns, (r) => r.latencyMs.p99);
  const pP99 = med(peerRuns, (r) => r.latencyMs.p99);
  // CPU per request (every thread of the one process): what a busy shared machine skews least.
  const hCpu = med(hostRuns, (r) => r.cpuUsPerRequest);
  const pCpu = med(peerRuns, (r) => r.cpuUsPerRequest);
  const errors = [...hostRuns, ...peerRuns].reduce((a, r) => a + r.errorCount, 0);
  const MB = 1024 * 1024;

  console.log(
    `\nCompute Resource Consolidation: ${N} http workloads, wrk ${DURATION}s x2 rounds, 32 connections\n`,
  );
  console.log(
    table(
      ['target', 'total RSS MB', 'per workload MB', 'req/s (one workload)', 'p99 ms', 'CPU µs/request'],
      [
        [
          'trellis host (threads)',
          (hostRss / MB).toFixed(0),
          (hostRss / MB / N).toFixed(1),
          hRps.toFixed(0),
          hP99.toFixed(2),
          hCpu.toFixed(1),
        ],
        [
          `${N} node processes`,
          (peersRss / MB).toFixed(0),
          (peersRss / MB / N).toFixed(1),
          pRps.toFixed(0),
          pP99.toFixed(2),
          pCpu.toFixed(1),
        ],
      ],
    ),
  );
  console.log('');
  console.log(verdict('total RSS host / processes', hostRss / peersRss, 0.35, false));
  console.log(verdict('req/s host / process', hRps / pRps, 0.9));
  console.log(verdict('p99 host / process', hP99 / pP99, 1.5, false));
  console.log(`CPU per request host / process: ${(hCpu / pCpu).toFixed(2)}x (reported, no target)`);
  console.log(`errors (every run): ${errors}`);
});
