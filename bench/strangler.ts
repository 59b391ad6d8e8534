/**
 * `npm run bench -- strangler [--rounds 3] [--duration 4] [--connections 32] [--paced 0.5]
 *  [--cpu-prof DIR]`
 *
 * One trellis gateway (pinned to CPU 0) with the same route four ways in front of nginx origins
 * (legacy and modern, on CPU 1 with wrk): a plain `proxy:`, `strangler:` in legacy mode, in
 * canary 50 %, and in shadow mode (every GET copied to modern, both answers compared with the
 * JSON diff). Interleaved rounds after a warm-up; medians. The shadow side's work (the copy, the
 * comparison) runs in the same gateway process, so its req/s includes it.
 *
 * Then the same targets at a fixed offered rate below saturation (`--paced`, a share of the
 * plain proxy's measured req/s; 0 skips it), with an open-loop generator: the p50 and p99 a
 * user sees at that load, which is what "+1 ms p50" means (at saturation every added µs of CPU
 * is queueing time for all requests). `--cpu-prof DIR` runs the gateway under `node
 * --cpu-prof` and leaves its profile in DIR.
 *
 * Targets (issue 14): shadow adds <= 1 ms p50 and <= 3 ms p99 to the primary answer and keeps
 * >= 0.8x the plain route's req/s; legacy and canary >= 0.95x plain.
 */
import {
  canPin,
  freePort,
  interleave,
  LOAD_CPU,
  measurePaced,
  measureTargets,
  median,
  originConfig,
  pacedDelayMs,
  ratio,
  ratioTable,
  runArgs,
  runBench,
  startNginx,
  startTrellis,
  summarize,
  summaryTable,
  TARGET_CPU,
  type Target,
  table,
  verdict,
  waitForTargets,
  writeBenchFile,
} from './_support/index.js';

const args = runArgs(
  { rounds: 3, duration: 4, connections: 32, warmup: 2 },
  { paced: '0.5', 'cpu-prof': undefined },
);
const { rounds, durationS, connections, warmupS, values: opts } = args;
const pacedShare = Number(opts.paced);
const LEGACY = JSON.stringify({
  id: 42,
  name: 'lamp',
  price: 189,
  tags: ['a', 'b'],
  stock: { n: 3, at: 'AAR-1' },
});
const MODERN = JSON.stringify({
  id: 42,
  name: 'lamp',
  price: 189,
  tags: ['a', 'b'],
  stock: { n: 3, at: 'aar-1' },
});

await runBench(main);

async function main(): Promise<void> {
  console.log(
    `strangler bench: ${rounds} rounds x ${durationS}s, wrk -c${connections}, gateway on CPU ${TARGET_CPU}, wrk + origins on CPU ${LOAD_CPU}${canPin ? '' : ' (one CPU: NOT pinned)'}`,
  );
  const legacyPort = await freePort();
  const modernPort = await freePort();
  await startNginx('legacy', legacyPort, originConfig(legacyPort, LEGACY), LOAD_CPU);
  await startNginx('modern', modernPort, originConfig(modernPort, MODERN), LOAD_CPU);
  const port = await freePort();
  const adminPort = await freePort();
  const s = (mode: string, extra = '') =>
    `strangler: { legacy: legacy, modern: modern, mode: ${mode}${extra} }`;
  const file = writeBenchFile(
    'strangler',
    'gateway.yaml',
    `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort} }
accessLog: false
services:
  legacy: { upstreams: ['http://127.0.0.1:${legacyPort}'] }
  modern: { upstreams: ['http://127.0.0.1:${modernPort}'] }
routes:
  - name: plain
    match: { path: /plain/items/:id }
    proxy: { service: legacy }
  - name: legacy-mode
    match: { path: /legacy/items/:id }
    ${s('legacy')}
  - name: canary-50
    match: { path: /canary/items/:id }
    ${s('canary', ', weight: 50, sticky: { header: x-user }')}
  - name: shadow-diff
    match: { path: /shadow/items/:id }
    ${s('shadow', ', shadow: { concurrency: 256, queue: 1024 }')}
  - name: shadow-sampled
    match: { path: /sampled/items/:id }
    ${s('shadow', ', shadow: { concurrency: 256, queue: 1024, sample: 0.25 }')}
`,
  );
  const gateway = startTrellis(
    'trellis-gateway',
    ['gateway', '-c', file, '--no-watch', '--log-level', 'warn'],
    {
      nodeArgs: opts['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', opts['cpu-prof']],
      cpu: TARGET_CPU,
    },
  );
  const base = `http://127.0.0.1:${port}`;
  const targets: Target[] = [
    { name: 'proxy (plain)', url: `${base}/plain/items/42`, proc: gateway },
    { name: 'strangler legacy', url: `${base}/legacy/items/42`, proc: gateway },
    { name: 'strangler canary 50', url: `${base}/canary/items/42`, proc: gateway },
    { name: 'strangler shadow + diff', url: `${base}/shadow/items/42`, proc: gateway },
    // Not one of the targets: the same shadow route copying a quarter of its requests.
    { name: 'shadow sample 0.25', url: `${base}/sampled/items/42`, proc: gateway },
  ];
  await waitForTargets(targets, 20_000, (t) => (t.name.includes('canary') ? [LEGACY, MODERN] : LEGACY));
  console.log(`warm-up: ${warmupS}s per target`);
  const { summary } = await measureTargets(targets, { ...args, cpu: LOAD_CPU });
  const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const count = (prefix: string) =>
    metrics
      .split('\n')
      .filter((l) => l.startsWith(prefix))
      .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  console.log(
    `\nStrangler Fig, median of ${rounds} interleaved rounds (${durationS}s each, wrk -c${connections})\n`,
  );
  console.log(summaryTable(summary, { perRound: true }));
  const plain = summary.get('proxy (plain)')!;
  const legacy = summary.get('strangler legacy')!;
  const canary = summary.get('strangler canary 50')!;
  const shadow = summary.get('strangler shadow + diff')!;
  const sampled = summary.get('shadow sample 0.25')!;
  const sent = count('trellis_strangler_shadow_total{route="shadow-diff",outcome="sent"');
  const dropped = count('trellis_strangler_shadow_total{route="shadow-diff",outcome="dropped"');
  const compared = count('trellis_strangler_comparisons_total{route="shadow-diff"');
  console.log(`\nshadow copies: ${sent} sent, ${dropped} dropped (queue full), ${compared} compared`);
  console.log('\nratios');
  console.log(
    ratioTable([
      ['strangler legacy / plain (req/s)', ratio(legacy.rps, plain.rps)],
      ['strangler canary 50 / plain (req/s)', ratio(canary.rps, plain.rps)],
      ['strangler shadow + diff / plain (req/s)', ratio(shadow.rps, plain.rps)],
      ['shadow p50 - plain p50 (ms)', (shadow.p50 - plain.p50).toFixed(2)],
      ['shadow p99 - plain p99 (ms)', (shadow.p99 - plain.p99).toFixed(2)],
      ['shadow CPU/req / plain CPU/req', ratio(shadow.cpuUs, plain.cpuUs)],
      ['sample 0.25 / plain (req/s)', ratio(sampled.rps, plain.rps)],
      ['sample 0.25 p50 - plain p50 (ms)', (sampled.p50 - plain.p50).toFixed(2)],
      ['sample 0.25 CPU/req / plain CPU/req', ratio(sampled.cpuUs, plain.cpuUs)],
    ]),
  );
  const paced = pacedShare > 0 ? await pacedRuns(targets, gateway.pid, pacedShare * plain.rps) : undefined;
  console.log('');
  console.log(verdict('legacy/plain req/s', legacy.rps / plain.rps, 0.95));
  console.log(verdict('canary 50/plain req/s', canary.rps / plain.rps, 0.95));
  console.log(verdict('shadow/plain req/s', shadow.rps / plain.rps, 0.8));
  console.log(verdict('shadow p50 added (ms, <= 1)', shadow.p50 - plain.p50, 1, false));
  console.log(verdict('shadow p99 added (ms, <= 3)', shadow.p99 - plain.p99, 3, false));
  if (paced !== undefined) {
    const at = `at ${paced.rate} req/s`;
    const added = (name: string, p: 'p50' | 'p99') =>
      paced.summary.get(name)![p] - paced.summary.get('proxy (plain)')![p];
    console.log(
      verdict(`shadow p50 added ${at} (ms, <= 1)`, added('strangler shadow + diff', 'p50'), 1, false),
    );
    console.log(
      verdict(`shadow p99 added ${at} (ms, <= 3)`, added('strangler shadow + diff', 'p99'), 3, false),
    );
  }
  console.log('\nThe machine may be shared: compare the ratios of one run, not absolute req/s.');
}

/**
 * Every target at one fixed offered rate (wrk paced by its delay hook, interleaved rounds,
 * medians): the latency a client sees below saturation, and the gateway's CPU per request there.
 */
async function pacedRuns(targets: readonly Target[], pid: number | undefined, offered: number) {
  const rate = Math.max(100, Math.round(offered / 100) * 100);
  // Many connections, so that each one's wait (connections / rate) is long against a request's
  // latency and the rate offered barely depends on how fast the target answers.
  const paced = 128;
  console.log(
    `\npaced: every target at about ${rate} req/s offered (${pacedShare} x plain's req/s; wrk -c${paced}, a random wait of mean ${pacedDelayMs(rate, paced)} ms before each request), ${durationS}s each`,
  );
  const results = await interleave(
    { targets, rounds, onRun: (t, r) => console.log(`paced round ${r}: ${t.name}`) },
    (t) => measurePaced(pid, { url: t.url, rate, durationS, cpu: LOAD_CPU, connections: paced }),
  );
  const summary = new Map(
    [...results].map(([t, runs]) => [
      t.name,
      {
        ...summarize(runs),
        p90: median(runs.map((r) => r.latencyMs.p90)),
      },
    ]),
  );
  console.log(`\nStrangler Fig at about ${rate} req/s offered, median of ${rounds} interleaved rounds\n`);
  console.log(
    table(
      ['target', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'errors', 'CPU µs/req'],
      [...summary].map(([name, r]) => [name, r.rps, r.p50, r.p90, r.p99, r.errors, r.cpuUs]),
    ),
  );
  for (const [name, r] of summary)
    if (r.rps < 0.9 * rate)
      console.log(
        `NOTE ${name} answered ${Math.round(r.rps)} req/s of ${rate} offered: it (or the shared machine) could not keep up, so its latencies include queueing`,
      );
  const plain = summary.get('proxy (plain)')!;
  console.log('');
  console.log(
    table(
      ['ratio at the paced rate', 'value'],
      [...summary]
        .filter(([name]) => name !== 'proxy (plain)')
        .flatMap(([name, r]) => [
          [`${name} p50 - plain p50 (ms)`, (r.p50 - plain.p50).toFixed(2)],
          [`${name} p99 - plain p99 (ms)`, (r.p99 - plain.p99).toFixed(2)],
          [`${name} CPU/req / plain CPU/req`, ratio(r.cpuUs, plain.cpuUs)],
        ]),
    ),
  );
  return { rate, summary };
}
