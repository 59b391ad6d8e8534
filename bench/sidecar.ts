/**
 * `npm run bench -- sidecar [--rounds 3] [--duration 5] [--connections 32]`
 *
 * One node:http app answering a small JSON body, called three ways: directly, through
 * `trellis sidecar` (no middlewares, access log off, the app spawned by the sidecar), and through
 * a hand-written node:http + undici forwarder (bench/_support/undici-forwarder.mjs). Proxies on
 * CPU 0; wrk and the app on CPU 1. Targets run interleaved over rounds after a warm-up; the
 * table shows the medians. A second pass at one connection shows the latency each hop adds.
 *
 * Targets (issue 16): the sidecar keeps >= 0.9x the forwarder's req/s and adds <= 0.3 ms p50.
 */
import { dirname } from 'node:path';
import {
  canPin,
  freePort,
  LOAD_CPU,
  measureAtOneConnection,
  measureTargets,
  ratio,
  repoRoot,
  runArgs,
  runBench,
  startNode,
  startTrellis,
  supportScript,
  TARGET_CPU,
  type Target,
  table,
  verdict,
  waitForTargets,
  writeBenchFile,
} from './_support/index.js';

const DEFAULTS = { rounds: 3, duration: 5, connections: 32, warmup: 2 };
const args = runArgs(DEFAULTS);
const { rounds, durationS, connections } = args;
const BODY = JSON.stringify({ id: 42, name: 'trellis', tags: ['sidecar', 'bench'], ok: true });

await runBench(main);

async function main(): Promise<void> {
  console.log(
    `sidecar bench: ${rounds} rounds x ${durationS}s, wrk -t1 -c${connections}, proxies on CPU ${TARGET_CPU}, wrk + app on CPU ${LOAD_CPU}${canPin ? '' : ' (one CPU: NOT pinned)'}`,
  );
  const appScript = supportScript('plain-app.mjs');

  // The sidecar spawns its own app (on CPU 1 with wrk, via taskset on the command).
  const sidecarAppPort = await freePort();
  const inbound = await freePort();
  const file = writeBenchFile(
    'sidecar',
    'sidecar.yaml',
    `app: { name: bench, port: ${sidecarAppPort}, healthPath: /healthz }
listen: { host: 127.0.0.1, port: ${inbound} }
api: { port: 0 }
admin: { enabled: false }
accessLog: false
`,
  );
  const appCommand = canPin
    ? ['taskset', '-c', String(LOAD_CPU), process.execPath, appScript]
    : [process.execPath, appScript];
  const sidecar = startTrellis(
    'trellis-sidecar',
    ['sidecar', '-c', file, '--no-watch', '--log-level', 'warn', '--', ...appCommand],
    {
      // SIDECAR_BENCH_CLI: another build's CLI, to compare before and after a change.
      cli: process.env.SIDECAR_BENCH_CLI,
      cpu: TARGET_CPU,
      cwd: dirname(file),
      env: { BENCH_BODY: BODY },
    },
  );

  // The same app, started directly, for the direct and the forwarder targets.
  const appPort = await freePort();
  startNode('app', [appScript], { cpu: LOAD_CPU, env: { PORT: String(appPort), BENCH_BODY: BODY } });
  const forwarderPort = await freePort();
  const forwarder = startNode(
    'undici-forwarder',
    [supportScript('undici-forwarder.mjs'), String(forwarderPort), `http://127.0.0.1:${appPort}`],
    { cpu: TARGET_CPU, cwd: repoRoot },
  );

  const path = '/items/42';
  const targets: Target[] = [
    { name: 'app (direct)', url: `http://127.0.0.1:${appPort}${path}` },
    { name: 'undici forwarder', url: `http://127.0.0.1:${forwarderPort}${path}`, proc: forwarder },
    { name: 'trellis sidecar', url: `http://127.0.0.1:${inbound}${path}`, proc: sidecar },
  ];
  await waitForTargets(targets, 30_000, () => BODY);

  const load = await measureTargets(targets, { ...args, cpu: LOAD_CPU });
  const single = await measureAtOneConnection(targets, { rounds, cpu: LOAD_CPU, durationS });
  const s = new Map(
    targets.map((t) => [t.name, { load: load.summary.get(t.name)!, single: single.summary.get(t.name)! }]),
  );
  const direct = s.get('app (direct)')!;
  const fwd = s.get('undici forwarder')!;
  const side = s.get('trellis sidecar')!;
  console.log(
    table(
      ['target', 'req/s', 'per round', 'p50 ms', 'p99 ms', 'errors', 'p50 ms (1 conn)', 'added p50 (1 conn)'],
      targets.map((t) => {
        const r = s.get(t.name)!;
        return [
          t.name,
          Math.round(r.load.rps),
          r.load.perRound,
          r.load.p50.toFixed(2),
          r.load.p99.toFixed(2),
          r.load.errors,
          r.single.p50.toFixed(3),
          (r.single.p50 - direct.single.p50).toFixed(3),
        ];
      }),
    ),
  );
  console.log(`sidecar / forwarder req/s: ${ratio(side.load.rps, fwd.load.rps)}`);
  console.log(verdict('sidecar req/s vs the undici forwarder', side.load.rps / fwd.load.rps, 0.9));
  console.log(
    verdict('p50 the sidecar adds at one connection', side.single.p50 - direct.single.p50, 0.3, false, ' ms'),
  );
}
