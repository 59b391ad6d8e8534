/**
 * `npm run bench -- gateway [--rounds 3] [--duration 5] [--connections 64] [--access-log]`
 *
 * One run, on this machine: an nginx origin answering a small JSON body, and three proxies in
 * front of it: nginx (`proxy_pass` with upstream keepalive), `@fastify/http-proxy` on fastify 5
 * (logger off) and `trellis gateway` (route matching over a small table, request ids, metrics
 * on). Each proxy is one process pinned to CPU 0; wrk and the origin share CPU 1. Targets run
 * interleaved over several rounds after a warm-up; the table shows the median of the rounds.
 * Access logs are off for every proxy unless `--access-log` turns them on (to a file) for nginx
 * and trellis alike.
 *
 * Targets (issue 2): trellis >= 1.3x fastify-proxy req/s, >= 0.4x nginx, p99 <= fastify's.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type BenchProcess,
  benchDir,
  canPin,
  freePort,
  interleave,
  type MeasuredRun,
  measureRun,
  originConfig,
  proxyConfig,
  ratio,
  runWrk,
  startNginx,
  startProcess,
  stopAll,
  stopAllOnExit,
  summarize,
  table,
  verdict,
  waitForHttp,
} from './_support/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '64' },
    warmup: { type: 'string', default: '2' },
    'access-log': { type: 'boolean', default: false },
  },
});
const rounds = Number(opts.rounds);
const durationS = Number(opts.duration);
const connections = Number(opts.connections);
const accessLog = opts['access-log'];
const PROXY_CPU = 0;
const LOAD_CPU = 1;
const BODY = JSON.stringify({ id: 42, name: 'trellis', tags: ['gateway', 'bench'], ok: true });

interface Target {
  name: string;
  url: string;
  proc?: BenchProcess;
}

stopAllOnExit();
try {
  await main();
} finally {
  await stopAll();
}

async function main(): Promise<void> {
  const gatewayCli = join(root, 'dist/cli/main.js');
  console.log(
    `gateway bench: ${rounds} rounds x ${durationS}s, wrk -t1 -c${connections}, proxies on CPU ${PROXY_CPU}, wrk + origin on CPU ${LOAD_CPU}${canPin ? '' : ' (one CPU: NOT pinned)'}; access logs ${accessLog ? 'on (file)' : 'off'}`,
  );
  console.log(`work dir (configs, logs): ${benchDir()}`);

  const originPort = await freePort();
  await startNginx('origin', originPort, originConfig(originPort, BODY), LOAD_CPU);
  const origin = `http://127.0.0.1:${originPort}`;

  const nginxPort = await freePort();
  const nginx = await startNginx(
    'nginx-proxy',
    nginxPort,
    proxyConfig(nginxPort, originPort, accessLog ? join(benchDir(), 'nginx-access.log') : undefined),
    PROXY_CPU,
  );

  const fastifyPort = await freePort();
  const fastify = startProcess(
    'fastify-proxy',
    process.execPath,
    [join(here, '_support/fastify-proxy.mjs'), String(fastifyPort), origin],
    { cpu: PROXY_CPU, cwd: here, env: { ...process.env, NODE_ENV: 'production' } },
  );

  const trellisPort = await freePort();
  const adminPort = await freePort();
  const file = writeGatewayConfig(trellisPort, adminPort, origin);
  const trellis = startProcess(
    'trellis-gateway',
    process.execPath,
    [gatewayCli, 'gateway', '-c', file, '--no-watch', '--log-level', accessLog ? 'info' : 'warn'],
    { cpu: PROXY_CPU, env: { ...process.env, NODE_ENV: 'production' } },
  );

  const path = '/api/catalog/items/42';
  const targets: Target[] = [
    { name: 'nginx-proxy', url: `http://127.0.0.1:${nginxPort}${path}`, proc: nginx },
    { name: 'fastify-proxy', url: `http://127.0.0.1:${fastifyPort}${path}`, proc: fastify },
    { name: 'trellis', url: `http://127.0.0.1:${trellisPort}${path}`, proc: trellis },
  ];
  for (const t of targets) await waitForHttp(t.url, 20_000).catch(explain(t));
  await checkSameAnswer(targets);
  // The metrics trellis exports must be live while it is measured ("access metrics on").
  await waitForHttp(`http://127.0.0.1:${adminPort}/metrics`, 5_000);
  const counted = await routeRequestCount(adminPort);
  if (counted < 1)
    throw new Error('trellis /metrics counts no request on the measured route: are metrics on?');

  const direct: Target = { name: 'origin (direct, reference)', url: `${origin}${path}` };
  const all = [...targets, direct];
  console.log(`warm-up: ${opts.warmup}s per target`);
  for (const t of all)
    await runWrk({ url: t.url, cpu: LOAD_CPU, connections, durationS: Number(opts.warmup) });

  const results = await interleave(
    { targets: all, rounds, onRun: (t, r) => console.log(`round ${r}: ${t.name}`) },
    (t) => measureRun(t.proc?.pid, { url: t.url, cpu: LOAD_CPU, connections, durationS }),
  );
  report(all, results);
}

/** A gateway file with a realistic small route table in front of the measured route. */
function writeGatewayConfig(port: number, adminPort: number, origin: string): string {
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
accessLog: ${accessLog}
services:
  origin:
    upstreams: [${origin}]
routes:
${routes.join('\n')}
`;
  const dir = join(benchDir(), 'trellis');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  return file;
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
    if (t.name === 'trellis' && !res.headers.get('x-request-id')) {
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

function explain(t: Target) {
  return (err: unknown) => {
    throw new Error(`${t.name} did not come up: ${(err as Error).message}\n${t.proc?.tail() ?? ''}`);
  };
}

function report(all: Target[], results: Map<Target, MeasuredRun[]>): void {
  const summary = new Map(all.map((t) => [t.name, summarize(results.get(t)!)]));
  console.log(
    `\nGateway proxying, median of ${rounds} interleaved rounds (${durationS}s each, wrk -c${connections})\n`,
  );
  console.log(
    table(
      [
        'target',
        'req/s',
        'p50 ms',
        'p99 ms',
        'errors',
        'CPU µs/req',
        'req/s per CPU-second',
        'req/s per round',
      ],
      [...summary].map(([name, s]) => [
        name,
        s.rps,
        s.p50,
        s.p99,
        s.errors,
        Number.isNaN(s.cpuUs) ? '-' : s.cpuUs,
        Number.isNaN(s.cpuUs) ? '-' : 1e6 / s.cpuUs,
        s.perRound,
      ]),
    ),
  );
  const t = summary.get('trellis')!;
  const f = summary.get('fastify-proxy')!;
  const n = summary.get('nginx-proxy')!;
  console.log('\nratios');
  console.log(
    table(
      ['ratio', 'value'],
      [
        ['trellis / fastify-proxy (req/s)', ratio(t.rps, f.rps)],
        ['trellis / nginx-proxy (req/s)', ratio(t.rps, n.rps)],
        ['fastify-proxy / nginx-proxy (req/s)', ratio(f.rps, n.rps)],
        ['trellis p99 / fastify-proxy p99', ratio(t.p99, f.p99)],
        ['trellis / fastify-proxy (req per CPU-second)', ratio(f.cpuUs, t.cpuUs)],
        ['trellis / nginx-proxy (req per CPU-second)', ratio(n.cpuUs, t.cpuUs)],
      ],
    ),
  );
  console.log('');
  console.log(verdict('trellis/fastify-proxy req/s', t.rps / f.rps, 1.3));
  console.log(verdict('trellis/nginx-proxy req/s', t.rps / n.rps, 0.4));
  console.log(verdict('trellis p99 / fastify-proxy p99', t.p99 / f.p99, 1, false));
  if (t.errors + f.errors + n.errors > 0)
    console.log('WARNING: some target answered with errors (see the table)');
  console.log(
    '\nThe machine may be shared: req/s is noisy, so compare the ratios of one run. CPU per request is the',
  );
  console.log('steadier figure: req per CPU-second estimates each proxy with a core to itself.');
}
