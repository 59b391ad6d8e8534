/**
 * `npm run bench -- aggregation [--rounds 3] [--duration 5] [--connections 128]`
 *
 * Gateway Aggregation (issue 7): a three-part aggregation against origins that answer after 20,
 * 30 and 50 ms. Targets, each one process pinned to CPU 0 (wrk and the origins share CPU 1):
 *
 * - `trellis gateway` with an `aggregate:` route (metrics on, access log off);
 * - a hand-written fastify 5 + undici `Promise.all` fan-out of the same three calls (logger off),
 *   the floor a general-purpose handler has to beat.
 *
 * It prints, per target, the latency at low load (4 connections) next to a direct call of the
 * slowest origin — the difference is what the gateway adds over the slowest part — and the
 * throughput at `--connections`. Rounds are interleaved; the table shows medians.
 * Targets: trellis adds <= 1 ms at p50; trellis req/s >= 0.9x the fastify fan-out.
 *
 * Also run as its own helper processes: `--role origin PORT DELAY` and `--role fastify PORT O1 O2 O3`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const DELAYS = [20, 30, 50] as const;
const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    role: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '128' },
  },
});

if (opts.role === 'origin') await origin(Number(positionals[0]), Number(positionals[1]));
else if (opts.role === 'fastify') await fastifyFanOut(Number(positionals[0]), positionals.slice(1));
else if (opts.role === 'handler') await handlerOnly(positionals);
else await main();

/**
 * The aggregate handler alone, without the gateway around it: CPU per request of the handler on
 * a bare node:http server next to a hand-written undici `Promise.all` handler on the same kind
 * of server, in one process, against instant origins. Best of several rounds (on a shared
 * machine the minimum is the least disturbed). Prints one JSON line.
 */
async function handlerOnly(origins: string[]): Promise<void> {
  const { Pool } = await import('undici');
  const { startAggregate } = await import('../src/handlers/aggregate/testing/harness.js');
  const names = DELAYS.map((d) => `s${d}`);
  const gateway = await startAggregate(
    `parts:\n${DELAYS.map((d) => `  p${d}: { service: s${d}, path: '/d${d}/{id}' }`).join('\n')}\n`,
    Object.fromEntries(names.map((n, i) => [n, { upstreams: [origins[i]!] }])),
    { route: '/page/:id' },
  );
  const pools = origins.map((o) => new Pool(o, { connections: 128 }));
  const hand = createServer(async (req, res) => {
    const id = (req.url ?? '/').split('/')[2] ?? '';
    const [a, b, c] = await Promise.all(
      pools.map(async (pool, i) =>
        (await pool.request({ path: `/d${DELAYS[i]}/${id}`, method: 'GET' })).body.json(),
      ),
    );
    const text = JSON.stringify({ p20: a, p30: b, p50: c });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  await new Promise<void>((r) => hand.listen(0, '127.0.0.1', r));
  const handUrl = `http://127.0.0.1:${(hand.address() as { port: number }).port}`;
  const cpuPerRequest = async (base: string, n: number) => {
    const client = new Pool(base, { connections: 16 });
    const one = async () => (await client.request({ path: '/page/42', method: 'GET' })).body.text();
    for (let i = 0; i < 300; i++) await one();
    const before = process.cpuUsage();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = 0; i < n / 16; i++) await one();
      }),
    );
    const used = process.cpuUsage(before);
    await client.close();
    return (used.user + used.system) / n;
  };
  let trellis = Number.POSITIVE_INFINITY;
  let handWritten = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 6; round++) {
    trellis = Math.min(trellis, await cpuPerRequest(gateway.url, 3200));
    handWritten = Math.min(handWritten, await cpuPerRequest(handUrl, 3200));
  }
  console.log(JSON.stringify({ trellis, handWritten }));
  await gateway.close();
  hand.close();
  await Promise.all(pools.map((p) => p.close()));
}

/** An origin that answers a small JSON body after a fixed delay. */
async function origin(port: number, delay: number): Promise<void> {
  const body = (id: string) =>
    JSON.stringify({
      id,
      delay,
      name: `part answered after ${delay} ms`,
      tags: ['a', 'b', 'c'],
      price: 12.5,
    });
  const server = createServer((req, res) => {
    const id = (req.url ?? '/').split('/').pop() ?? '';
    setTimeout(() => {
      const text = body(id);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    }, delay);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}

/** The peer: fastify 5 and undici, the three calls in Promise.all, composed by hand. */
async function fastifyFanOut(port: number, origins: string[]): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const { Pool } = await import('undici');
  // Same pool size as a Trellis service's default (128 connections per upstream).
  const pools = origins.map((o) => new Pool(o, { connections: 128 }));
  const app = Fastify({ logger: false });
  app.get<{ Params: { id: string } }>('/page/:id', async (req) => {
    const id = encodeURIComponent(req.params.id);
    const [a, b, c] = await Promise.all(
      pools.map(async (pool, i) => {
        const res = await pool.request({ path: `/d${DELAYS[i]}/${id}`, method: 'GET' });
        return res.body.json();
      }),
    );
    return { a, b, c };
  });
  await app.listen({ port, host: '127.0.0.1' });
  process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
}

/** User + system CPU a process has used, in ms (Linux /proc; clock ticks are 10 ms). */
function cpuMs(pid: number): number {
  if (!pid) return 0;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

async function main(): Promise<void> {
  const support = await import('./_support/index.js');
  const { benchDir, freePort, interleave, median, ratio, runWrk, runBench, startNode, startTrellis, table } =
    support;
  const rounds = Number(opts.rounds);
  const durationS = Number(opts.duration);
  const connections = Number(opts.connections);
  const TARGET_CPU = 0;
  const LOAD_CPU = 1;
  const self = fileURLToPath(import.meta.url);
  const tsx = ['--import', 'tsx', self];

  await runBench(async () => {
    const originPorts = await Promise.all(DELAYS.map(() => freePort()));
    const origins = originPorts.map((port, i) => {
      const p = startNode(
        `origin-${DELAYS[i]}ms`,
        [...tsx, '--role', 'origin', String(port), String(DELAYS[i])],
        {
          cpu: LOAD_CPU,
          cwd: root,
        },
      );
      return { proc: p, url: `http://127.0.0.1:${port}` };
    });
    for (const [i, o] of origins.entries()) await support.waitForHttp(`${o.url}/d${DELAYS[i]}/1`, 20_000);

    const fastifyPort = await freePort();
    const fastifyProc = startNode(
      'fastify-fanout',
      [...tsx, '--role', 'fastify', String(fastifyPort), ...origins.map((o) => o.url)],
      {
        cpu: TARGET_CPU,
        cwd: here,
      },
    );
    const trellisPort = await freePort();
    const adminPort = await freePort();
    const config = join(benchDir(), 'aggregation.yaml');
    writeFileSync(
      config,
      `listen: { port: ${trellisPort} }
accessLog: false
services:
${DELAYS.map((d, i) => `  s${d}: { upstreams: ['${origins[i]!.url}'] }`).join('\n')}
routes:
  - name: page
    match: { path: /page/:id, methods: [GET] }
    aggregate:
      parts:
${DELAYS.map((d) => `        p${d}: { service: s${d}, path: '/d${d}/{id}' }`).join('\n')}
`,
    );
    const trellisProc = startTrellis(
      'trellis',
      ['gateway', '-c', config, '--admin', `127.0.0.1:${adminPort}`, '--log-level', 'warn', '--no-watch'],
      { cpu: TARGET_CPU, cwd: root },
    );
    const slowest = `${origins[2]!.url}/d50/42`;
    const targets = [
      { name: 'direct: slowest origin (50 ms)', url: slowest, pid: 0 },
      { name: 'trellis aggregate', url: `http://127.0.0.1:${trellisPort}/page/42`, pid: trellisProc.pid },
      {
        name: 'fastify + undici Promise.all',
        url: `http://127.0.0.1:${fastifyPort}/page/42`,
        pid: fastifyProc.pid,
      },
    ];
    for (const t of targets) await support.waitForHttp(t.url, 20_000);
    // The answers must be the same three parts, or the comparison means nothing.
    const [tBody, fBody] = await Promise.all(
      [targets[1]!.url, targets[2]!.url].map(async (u) => (await fetch(u)).json()),
    );
    const parts = (b: unknown) =>
      Object.values(b as Record<string, { delay: number }>)
        .map((p) => p.delay)
        .sort();
    if (JSON.stringify(parts(tBody)) !== JSON.stringify(parts(fBody))) {
      throw new Error(
        `the two targets answer differently: ${JSON.stringify(tBody)} vs ${JSON.stringify(fBody)}`,
      );
    }

    // Warm-up: JIT, keep-alive pools.
    for (const t of targets) await runWrk({ url: t.url, cpu: LOAD_CPU, connections: 32, durationS: 2 });

    console.log(
      `aggregation benchmark: ${rounds} interleaved rounds, latency at 4 connections and throughput at ${connections}, ${durationS}s each`,
    );
    const results = await interleave(
      { targets, rounds, onRun: (t, r) => process.stdout.write(`  round ${r}: ${t.name}\n`) },
      async (t) => {
        const quiet = await runWrk({ url: t.url, cpu: LOAD_CPU, connections: 4, durationS });
        const cpuBefore = cpuMs(t.pid);
        const loaded = t.pid
          ? await runWrk({ url: t.url, cpu: LOAD_CPU, connections, durationS })
          : undefined;
        return {
          p50: quiet.latencyMs.p50,
          p99: quiet.latencyMs.p99,
          rps: loaded?.requestsPerSec ?? Number.NaN,
          // CPU the target spent per request under load: steadier than req/s on a busy machine.
          cpuUs: loaded ? ((cpuMs(t.pid) - cpuBefore) * 1000) / loaded.requests : Number.NaN,
          // wrk timeouts on an overloaded machine and non-2xx answers are shown, not hidden.
          errors: quiet.errorCount + (loaded?.errorCount ?? 0),
        };
      },
    );
    const med = (t: (typeof targets)[number], k: 'p50' | 'p99' | 'rps' | 'cpuUs') =>
      median(results.get(t)!.map((r) => r[k]));
    const [direct, trellis, fastify] = targets as [
      (typeof targets)[0],
      (typeof targets)[0],
      (typeof targets)[0],
    ];
    const row = (t: typeof direct) => [
      t.name,
      med(t, 'p50'),
      med(t, 'p99'),
      t === direct ? '-' : (med(t, 'p50') - med(direct, 'p50')).toFixed(2),
      t === direct ? '-' : (med(t, 'p99') - med(direct, 'p99')).toFixed(2),
      t === direct ? '-' : Math.round(med(t, 'rps')),
      t === direct ? '-' : Math.round(med(t, 'cpuUs')),
      results.get(t)!.reduce((n, r) => n + r.errors, 0),
    ];
    console.log('');
    console.log(
      table(
        [
          'target',
          'p50 ms (4 conn)',
          'p99 ms (4 conn)',
          'added p50 ms',
          'added p99 ms',
          `req/s (${connections} conn)`,
          'CPU µs/request',
          'errors',
        ],
        [row(direct), row(trellis), row(fastify)],
      ),
    );
    const added = med(trellis, 'p50') - med(direct, 'p50');
    const throughput = med(trellis, 'rps') / med(fastify, 'rps');
    console.log('');
    console.log(
      `${added <= 1 ? 'PASS' : 'MISS'} trellis added latency over the slowest part at p50: ${added.toFixed(2)} ms (target <= 1 ms)`,
    );
    console.log(
      `${throughput >= 0.9 ? 'PASS' : 'MISS'} trellis/fastify fan-out req/s ${ratio(med(trellis, 'rps'), med(fastify, 'rps'))} (target >= 0.9x)`,
    );
    console.log(
      `     trellis/fastify CPU per request ${ratio(med(trellis, 'cpuUs'), med(fastify, 'cpuUs'))} (lower is leaner)`,
    );
    // The handler alone: instant origins (delay 0) so the CPU figure is the handler's, not waiting.
    const instant = await Promise.all(DELAYS.map(() => freePort()));
    for (const [i, port] of instant.entries()) {
      startNode(`instant-origin-${i}`, [...tsx, '--role', 'origin', String(port), '0'], {
        cpu: LOAD_CPU,
        cwd: root,
      });
    }
    for (const port of instant) await support.waitForHttp(`http://127.0.0.1:${port}/d0/1`, 20_000);
    const handler = startNode(
      'handler-only',
      [...tsx, '--role', 'handler', ...instant.map((p) => `http://127.0.0.1:${p}`)],
      { cpu: TARGET_CPU, cwd: root },
    );
    await handler.exited;
    const line = handler
      .tail(50)
      .split('\n')
      .find((l) => l.startsWith('{"trellis"'));
    if (line) {
      const h = JSON.parse(line) as { trellis: number; handWritten: number };
      console.log(
        `     the aggregate handler alone (no gateway around it), CPU per request incl. the client: ${h.trellis.toFixed(0)} µs vs ${h.handWritten.toFixed(0)} µs hand-written (${ratio(h.trellis, h.handWritten)})`,
      );
    } else console.log(`     handler-only measurement failed:\n${handler.tail()}`);
    console.log(
      `(${support.canPin ? 'targets pinned to CPU 0, wrk and origins to CPU 1' : 'one CPU: nothing pinned'}; logs in ${benchDir()})`,
    );
  });
}
