/**
 * `npm run bench -- ambassador [--rounds 3] [--duration 5] [--connections 32]`
 *
 * One run, on this machine: an nginx origin answering a small JSON body, reached directly and
 * through three forwarders: nginx (`proxy_pass` with upstream keepalive, the forward-proxy peer),
 * the hand-written node:http + undici forwarder (bench/_support/undici-forwarder.mjs), and
 * `trellis ambassador` twice: with breakers and retries off, and with them on (defaults: 2
 * attempts, budget, breaker, bulkhead). Each forwarder is pinned to CPU 0, wrk and the origin
 * share CPU 1; targets run interleaved and the table shows medians.
 *
 * Targets (issue 17): added p50 <= 0.3 ms over direct (measured at one connection, what one
 * caller waits; at saturation it is queueing); req/s >= 0.9x the undici forwarder;
 * with breakers and retries on, >= 0.85x.
 */
import {
  type BenchProcess,
  freePort,
  LOAD_CPU,
  measureAtOneConnection,
  measureTargets,
  originConfig,
  proxyConfig,
  type RunSummary,
  ratio,
  ratioTable,
  repoRoot,
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
  waitForTargets,
  writeBenchFile,
} from './_support/index.js';

const DEFAULTS = { rounds: 3, duration: 5, connections: 32, warmup: 2 };
const args = runArgs(DEFAULTS);
const { rounds, durationS, connections } = args;
const BODY = JSON.stringify({ id: 42, name: 'trellis', tags: ['ambassador', 'bench'], ok: true });

await runBench(main);

async function main(): Promise<void> {
  console.log(`ambassador bench: ${rounds} rounds x ${durationS}s, wrk -c${connections}`);
  const originPort = await freePort();
  await startNginx('origin', originPort, originConfig(originPort, BODY), LOAD_CPU);
  const origin = `http://127.0.0.1:${originPort}`;

  const nginxPort = await freePort();
  const nginx = await startNginx('nginx-proxy', nginxPort, proxyConfig(nginxPort, originPort), TARGET_CPU);
  const undiciPort = await freePort();
  const undici = startNode(
    'undici-forwarder',
    [supportScript('undici-forwarder.mjs'), String(undiciPort), origin],
    { cpu: TARGET_CPU, cwd: repoRoot },
  );
  const plainPort = await freePort();
  const resilientPort = await freePort();
  const plain = ambassador('ambassador-plain', plainPort, origin, false);
  const resilient = ambassador('ambassador-resilient', resilientPort, origin, true);

  const path = '/v1/items/42';
  const targets: Target[] = [
    { name: 'direct', url: `${origin}${path}` },
    { name: 'nginx-proxy', url: `http://127.0.0.1:${nginxPort}${path}`, proc: nginx },
    { name: 'undici-forwarder', url: `http://127.0.0.1:${undiciPort}${path}`, proc: undici },
    { name: 'ambassador (plain)', url: `http://127.0.0.1:${plainPort}${path}`, proc: plain },
    {
      name: 'ambassador (breakers+retries)',
      url: `http://127.0.0.1:${resilientPort}${path}`,
      proc: resilient,
    },
  ];
  await waitForTargets(targets, 20_000, () => BODY);
  const { summary } = await measureTargets(targets, { ...args, cpu: LOAD_CPU });
  // Added latency means what one caller waits, not queueing at saturation: one connection.
  const single = await measureAtOneConnection(targets, { rounds, cpu: LOAD_CPU, durationS });
  report(summary, single.summary);
}

function ambassador(name: string, port: number, origin: string, resilient: boolean): BenchProcess {
  const policies = resilient
    ? ''
    : `
    breaker: { consecutiveFailures: 0, failureRatio: 0 }
    perTryTimeout: 0s
    timeout: 0s`;
  const yaml = `admin: { enabled: false }
accessLog: false
remotes:
  origin:
    listen: { port: ${port} }${policies}
    service:
      upstreams: [${origin}]
      retry: { attempts: ${resilient ? 2 : 1} }
`;
  const file = writeBenchFile(name, 'ambassador.yaml', yaml);
  return startTrellis(name, ['ambassador', '-c', file, '--no-watch', '--no-admin', '--log-level', 'warn'], {
    cpu: TARGET_CPU,
  });
}

function report(s: Map<string, RunSummary>, one: Map<string, RunSummary>): void {
  console.log(
    `\nAmbassador forwarding, median of ${rounds} rounds (${durationS}s each, wrk -c${connections})\n`,
  );
  console.log(summaryTable(s));
  const direct = s.get('direct')!;
  const undici = s.get('undici-forwarder')!;
  const plain = s.get('ambassador (plain)')!;
  const res = s.get('ambassador (breakers+retries)')!;
  const nginx = s.get('nginx-proxy')!;
  const addedAtOne = (name: string) => one.get(name)!.p50 - one.get('direct')!.p50;
  console.log(
    ratioTable([
      ['ambassador (plain) / undici-forwarder (req/s)', ratio(plain.rps, undici.rps)],
      ['ambassador (breakers+retries) / undici-forwarder (req/s)', ratio(res.rps, undici.rps)],
      ['ambassador (plain) / nginx-proxy (req/s)', ratio(plain.rps, nginx.rps)],
      ['added p50 over direct at saturation, ms (plain)', (plain.p50 - direct.p50).toFixed(3)],
      ['added p50 over direct at 1 connection, ms (plain)', addedAtOne('ambassador (plain)').toFixed(3)],
      [
        'added p50 over direct at 1 connection, ms (undici-forwarder)',
        addedAtOne('undici-forwarder').toFixed(3),
      ],
    ]),
  );
  console.log(verdict('ambassador plain / undici req/s', plain.rps / undici.rps, 0.9));
  console.log(verdict('ambassador resilient / undici req/s', res.rps / undici.rps, 0.85));
  console.log(
    verdict('added p50 at 1 connection (plain)', addedAtOne('ambassador (plain)'), 0.3, false, ' ms'),
  );
  console.log('\nThe machine may be shared: compare the ratios of one run.');
}
