/**
 * `npm run bench -- gateway [--rounds 3] [--duration 5] [--connections 64] [--warmup 2]`
 *
 * One run, on this machine: an nginx origin answering a small JSON body, and the proxies in
 * front of it, all measured in the same interleaved rounds (the table shows the median):
 *
 * - one core (each proxy one process pinned to CPU 0; wrk and the origin share CPU 1): nginx
 *   (`proxy_pass` with upstream keepalive), `@fastify/http-proxy` on fastify 5 (logger off), a
 *   hand-written node:http + undici Pool forwarder (`_support/node-forwarder.mjs`, the floor of
 *   what Node can do), `trellis gateway` with `accessLog: false` (route matching over a small
 *   table, request ids, metrics on), and the same gateway with its default access log on
 *   (JSON lines on stderr, which the harness writes to a file);
 * - two cores (proxies on CPUs 0 and 1, wrk and the origin still on CPU 1): nginx with
 *   `worker_processes 2` and trellis with `workers: 2`, access logs off for both.
 *
 * Targets (issues 2 and 10): trellis >= 1.0x the forwarder and >= 1.3x fastify-proxy in req/s
 * and in requests per CPU-second, p99 no worse than either (and <= 1.5x the forwarder's);
 * access log on >= 0.9x of off; workers 2 vs nginx 2 workers aim >= 0.45x.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import {
  benchDir,
  benchFolder,
  canPin,
  freePort,
  LOAD_CPU,
  measureTargets,
  originConfig,
  proxyConfig,
  type RunSummary,
  ratio,
  ratioTable,
  runArgs,
  runBench,
  startNginx,
  startNode,
  startTrellis,
  summaryTable,
  supportScript,
  TARGET_CPU,
  type Target,
  verdict,
  waitForHttp,
  waitForTargets,
  writeBenchFile,
} from './_support/index.js';

const DEFAULTS = { rounds: 3, duration: 5, connections: 64, warmup: 2 };
const args = runArgs(DEFAULTS);
const { rounds, durationS, connections, warmupS } = args;
const BOTH_CPUS = '0,1';
const BODY = JSON.stringify({ id: 42, name: 'trellis', tags: ['gateway', 'bench'], ok: true });

await runBench(main);

async function main(): Promise<void> {
  console.log(
    `gateway bench: ${rounds} rounds x ${durationS}s, wrk -t1 -c${connections}, one-core proxies on CPU ${TARGET_CPU}, two-core proxies on CPUs ${BOTH_CPUS}, wrk + origin on CPU ${LOAD_CPU}${canPin ? '' : ' (one CPU: NOT pinned)'}`,
  );
  console.log(`work dir (configs, logs): ${benchDir()}`);
  console.log(
    `machine load before the run (1/5/15 min): ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );

  const originPort = await freePort();
  await startNginx('origin', originPort, originConfig(originPort, BODY), LOAD_CPU);
  const origin = `http://127.0.0.1:${originPort}`;

  const nginxPort = await freePort();
  const nginx = await startNginx('nginx-proxy', nginxPort, proxyConfig(nginxPort, originPort), TARGET_CPU);
  const nginx2Port = await freePort();
  const nginx2 = await startNginx(
    'nginx-proxy-2-workers',
    nginx2Port,
    proxyConfig(nginx2Port, originPort),
    BOTH_CPUS,
    2,
  );

  const fastifyPort = await freePort();
  const fastify = startNode(
    'fastify-proxy',
    [supportScript('fastify-proxy.mjs'), String(fastifyPort), origin],
    {
      cpu: TARGET_CPU,
      cwd: benchFolder,
    },
  );

  const forwarderPort = await freePort();
  const forwarder = startNode(
    'node-forwarder',
    [supportScript('node-forwarder.mjs'), String(forwarderPort), origin],
    { cpu: TARGET_CPU, cwd: benchFolder },
  );

  const startGateway = async (
    name: string,
    cpu: number | string,
    settings: { accessLog: boolean; workers: number },
  ) => {
    const port = await freePort();
    const adminPort = await freePort();
    const file = writeGatewayConfig(name, port, adminPort, origin, settings);
    const proc = startTrellis(name, ['gateway', '-c', file, '--no-watch'], { cpu });
    return { port, adminPort, proc };
  };
  const trellis = await startGateway('trellis', TARGET_CPU, { accessLog: false, workers: 1 });
  const trellisLog = await startGateway('trellis-access-log', TARGET_CPU, { accessLog: true, workers: 1 });
  const trellis2 = await startGateway('trellis-workers-2', BOTH_CPUS, { accessLog: false, workers: 2 });

  const path = '/api/catalog/items/42';
  const url = (port: number) => `http://127.0.0.1:${port}${path}`;
  const targets: Target[] = [
    { name: 'nginx-proxy', url: url(nginxPort), proc: nginx },
    { name: 'fastify-proxy', url: url(fastifyPort), proc: fastify },
    { name: 'node-forwarder', url: url(forwarderPort), proc: forwarder },
    { name: 'trellis', url: url(trellis.port), proc: trellis.proc },
    { name: 'trellis-access-log', url: url(trellisLog.port), proc: trellisLog.proc },
    { name: 'nginx-proxy-2-workers', url: url(nginx2Port), proc: nginx2 },
    { name: 'trellis-workers-2', url: url(trellis2.port), proc: trellis2.proc },
  ];
  await waitForTargets(targets, 30_000);
  await checkSameAnswer(targets);
  // The metrics trellis exports must be live while it is measured ("access metrics on").
  for (const t of [trellis, trellisLog, trellis2]) {
    await waitForHttp(`http://127.0.0.1:${t.adminPort}/metrics`, 5_000);
    const counted = await routeRequestCount(t.adminPort);
    if (counted < 1)
      throw new Error('trellis /metrics counts no request on the measured route: are metrics on?');
  }

  const direct: Target = { name: 'origin (direct, reference)', url: `${origin}${path}` };
  const all = [...targets, direct];
  console.log(`warm-up: ${warmupS}s per target`);
  const { summary } = await measureTargets(all, { ...args, cpu: LOAD_CPU });
  // The access-log target must really have logged what it served.
  const logged = readFileSync(trellisLog.proc.logFile, 'utf8').split('"msg":"access"').length - 1;
  report(summary, logged);
  console.log(
    `machine load after the run (1/5/15 min): ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

/** A gateway file with a realistic small route table in front of the measured route. */
function writeGatewayConfig(
  name: string,
  port: number,
  adminPort: number,
  origin: string,
  settings: { accessLog: boolean; workers: number },
): string {
  const routes = [
    '  - match: { path: /health }\n    respond: { status: 200, body: ok }',
    ...Array.from(
      { length: 20 },
      (_, i) =>
        `  - match: { pathPrefix: /api/svc-${i}, methods: [GET, POST] }\n    proxy: { service: origin }`,
    ),
    '  - match: { path: /api/users/:id }\n    proxy: { service: origin }',
    '  - name: catalog\n    match: { path: /api/catalog/*, methods: [GET] }\n    proxy: { service: origin, stripPrefix: /api }',
    '  - match: { path: /static/* }\n    proxy: { service: origin }',
  ];
  const yaml = `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort} }
accessLog: ${settings.accessLog}
workers: ${settings.workers}
services:
  origin:
    upstreams: [${origin}]
routes:
${routes.join('\n')}
`;
  return writeBenchFile(name, 'gateway.yaml', yaml);
}

/** Every proxy must pass the origin's answer through unchanged, or the race is not fair. */
async function checkSameAnswer(targets: Target[]): Promise<void> {
  for (const t of targets) {
    const res = await fetch(t.url);
    const body = await res.text();
    if (res.status !== 200 || body !== BODY) {
      throw new Error(
        `${t.name} answered ${res.status} ${JSON.stringify(body.slice(0, 200))}, not the origin's body`,
      );
    }
    // trellis is measured with its per-request features on: prove the request id is there.
    if (t.name.startsWith('trellis') && !res.headers.get('x-request-id')) {
      throw new Error(
        'trellis answered without x-request-id: the benchmark must measure it with request ids on',
      );
    }
  }
}

/** `trellis_gateway_requests_total` summed over the measured route's series. */
async function routeRequestCount(adminPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('trellis_gateway_requests_total{') && line.includes('route="catalog"')) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

function report(summary: Map<string, RunSummary>, accessLines: number): void {
  console.log(
    `\nGateway proxying, median of ${rounds} interleaved rounds (${durationS}s each, wrk -c${connections})\n`,
  );
  console.log(summaryTable(summary, { perCpuSecond: true, perRound: true }));
  const t = summary.get('trellis')!;
  const tl = summary.get('trellis-access-log')!;
  const t2 = summary.get('trellis-workers-2')!;
  const fw = summary.get('node-forwarder')!;
  const f = summary.get('fastify-proxy')!;
  const n = summary.get('nginx-proxy')!;
  const n2 = summary.get('nginx-proxy-2-workers')!;
  console.log('\nratios');
  console.log(
    ratioTable([
      ['one core: trellis / node-forwarder (req/s)', ratio(t.rps, fw.rps)],
      ['one core: trellis / node-forwarder (req per CPU-second)', ratio(fw.cpuUs, t.cpuUs)],
      ['one core: trellis / fastify-proxy (req/s)', ratio(t.rps, f.rps)],
      ['one core: trellis / fastify-proxy (req per CPU-second)', ratio(f.cpuUs, t.cpuUs)],
      ['one core: trellis / nginx-proxy (req/s)', ratio(t.rps, n.rps)],
      ['one core: trellis p99 / node-forwarder p99', ratio(t.p99, fw.p99)],
      ['one core: trellis p99 / fastify-proxy p99', ratio(t.p99, f.p99)],
      ['one core: access log on / off (req/s)', ratio(tl.rps, t.rps)],
      ['one core: access log on / off (req per CPU-second)', ratio(t.cpuUs, tl.cpuUs)],
      ['two cores: trellis workers 2 / nginx 2 workers (req/s)', ratio(t2.rps, n2.rps)],
      ['two cores: trellis workers 2 / one-core trellis (req/s)', ratio(t2.rps, t.rps)],
    ]),
  );
  console.log('');
  console.log(verdict('trellis/node-forwarder req/s', t.rps / fw.rps, 1.0));
  console.log(verdict('trellis/node-forwarder req per CPU-second', fw.cpuUs / t.cpuUs, 1.0));
  console.log(verdict('trellis/fastify-proxy req/s', t.rps / f.rps, 1.3));
  console.log(verdict('trellis/fastify-proxy req per CPU-second', f.cpuUs / t.cpuUs, 1.3));
  console.log(verdict('trellis p99 / fastify-proxy p99', t.p99 / f.p99, 1, false));
  console.log(verdict('trellis p99 / node-forwarder p99', t.p99 / fw.p99, 1, false));
  console.log(verdict('trellis p99 / node-forwarder p99 (aim)', t.p99 / fw.p99, 1.5, false));
  console.log(verdict('access log on / off req/s', tl.rps / t.rps, 0.9));
  console.log(verdict('trellis workers 2 / nginx 2 workers req/s', t2.rps / n2.rps, 0.45));
  console.log(`access lines the logging target wrote: ${accessLines.toLocaleString('en-US')}`);
  const errors = [...summary.values()].reduce((sum, s) => sum + s.errors, 0);
  if (errors > 0) console.log('WARNING: some target answered with errors (see the table)');
  console.log(
    '\nThe machine may be shared: req/s is noisy, so compare the ratios of one run. CPU per request is the',
  );
  console.log('steadier figure: req per CPU-second estimates each proxy with a core to itself.');
}
