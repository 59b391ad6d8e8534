/**
 * `npm run bench -- static [--rounds 3] [--duration 4] [--connections 64] [--warmup 1]`
 *
 * One run, on this machine: the same folder (a 1 KiB, a 100 KiB and a 1 MiB file) served by
 * nginx (`sendfile on`, `open_file_cache`, `tcp_nopush`), `serve-static` 2 on node:http,
 * `@fastify/static` on fastify 5 (logger off) and `trellis static serve` (access log off, the
 * admin listener on as a user runs it). Each server is one process pinned to CPU 0; wrk runs on
 * CPU 1. No Accept-Encoding is sent, so every server sends the identity bytes. Targets run
 * interleaved over rounds after a warm-up; the table shows the median round. Every server is
 * checked first to answer each file's exact bytes.
 *
 * Targets (issue 13): 1 KiB >= 2.0x serve-static and >= 0.35x nginx; 1 MiB >= 1.5x serve-static.
 * The npm peers live in bench/package.json; a peer that is not installed is reported and skipped.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  type BenchProcess,
  type Target as BenchTarget,
  benchDir,
  benchFolder,
  canPin,
  freePort,
  LOAD_CPU,
  measureTargets,
  type RunSummary,
  ratio,
  runArgs,
  runBench,
  startNginx,
  startNode,
  startTrellis,
  supportScript,
  TARGET_CPU,
  table,
  verdict,
  waitForHttp,
} from './_support/index.js';

const DEFAULTS = { rounds: 3, duration: 4, connections: 64, warmup: 1 };
const args = runArgs(DEFAULTS);
const { rounds, durationS, connections, warmupS } = args;
const FILES = [
  { name: '1k.bin', label: '1 KiB', bytes: 1024 },
  { name: '100k.bin', label: '100 KiB', bytes: 100 * 1024 },
  { name: '1m.bin', label: '1 MiB', bytes: 1024 * 1024 },
];

interface Server {
  name: string;
  base: string;
  proc: BenchProcess;
}

await runBench(main);

async function main(): Promise<void> {
  console.log(
    `static bench: ${rounds} rounds x ${durationS}s, wrk -t1 -c${connections}, servers on CPU ${TARGET_CPU}, wrk on CPU ${LOAD_CPU}${canPin ? '' : ' (one CPU: NOT pinned)'}`,
  );
  const site = join(benchDir(), 'site');
  mkdirSync(site, { recursive: true });
  const bodies = new Map<string, Buffer>();
  for (const f of FILES) {
    const body = Buffer.alloc(f.bytes);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31 + 7) & 0xff;
    writeFileSync(join(site, f.name), body);
    bodies.set(f.name, body);
  }
  console.log(`work dir (site, configs, logs): ${benchDir()}`);

  const servers: Server[] = [];
  const nginxPort = await freePort();
  servers.push({
    name: 'nginx',
    base: `http://127.0.0.1:${nginxPort}`,
    proc: await startNginx('nginx-static', nginxPort, nginxConfig(nginxPort, site), TARGET_CPU),
  });
  const require = createRequire(join(benchFolder, 'package.json'));
  for (const [name, pkg, script] of [
    ['serve-static', 'serve-static', 'serve-static.mjs'],
    ['fastify-static', '@fastify/static', 'fastify-static.mjs'],
  ] as const) {
    try {
      require.resolve(pkg);
    } catch {
      console.log(
        `${name}: ${pkg} is not installed in bench/node_modules (npm install --prefix bench): skipped`,
      );
      continue;
    }
    const port = await freePort();
    servers.push({
      name,
      base: `http://127.0.0.1:${port}`,
      proc: startNode(name, [supportScript(script), String(port), site], {
        cpu: TARGET_CPU,
        cwd: benchFolder,
      }),
    });
  }
  const trellisPort = await freePort();
  const adminPort = await freePort();
  servers.push({
    name: 'trellis',
    base: `http://127.0.0.1:${trellisPort}`,
    proc: startTrellis(
      'trellis-static',
      [
        'static',
        'serve',
        site,
        '--port',
        String(trellisPort),
        '--admin',
        `127.0.0.1:${adminPort}`,
        '--no-access-log',
        '--log-level',
        'warn',
      ],
      { cpu: TARGET_CPU },
    ),
  });
  for (const s of servers) {
    await waitForHttp(`${s.base}/${FILES[0]!.name}`, 20_000).catch((err: unknown) => {
      throw new Error(`${s.name} did not come up: ${(err as Error).message}\n${s.proc.tail()}`);
    });
    for (const f of FILES) {
      const got = Buffer.from(await (await fetch(`${s.base}/${f.name}`)).arrayBuffer());
      if (!got.equals(bodies.get(f.name)!)) throw new Error(`${s.name} answered other bytes for ${f.name}`);
    }
  }

  const targets: Target[] = servers.flatMap((s) =>
    FILES.map((f) => ({
      name: `${s.name} ${f.label}`,
      server: s,
      file: f,
      url: `${s.base}/${f.name}`,
      proc: s.proc,
    })),
  );
  console.log(`warm-up: ${warmupS}s per target`);
  const { summary } = await measureTargets(targets, { ...args, cpu: LOAD_CPU });
  report(targets, summary);
}

function nginxConfig(port: number, site: string): string {
  return `  sendfile on;
  tcp_nopush on;
  open_file_cache max=1000 inactive=60s;
  open_file_cache_valid 60s;
  etag on;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${site};
    location / { }
  }`;
}

type Target = BenchTarget & { server: Server; file: (typeof FILES)[number] };

function report(targets: Target[], summary: Map<string, RunSummary>): void {
  const rps = new Map<string, number>();
  const rows = targets.map((t) => {
    const s = summary.get(t.name)!;
    rps.set(`${t.server.name} ${t.file.label}`, s.rps);
    return [
      t.file.label,
      t.server.name,
      Math.round(s.rps).toLocaleString('en'),
      s.p50.toFixed(2),
      s.p99.toFixed(2),
      s.errors,
      s.cpuUs.toFixed(1),
      `${((s.rps * t.file.bytes) / 1024 ** 2).toFixed(0)} MiB/s`,
    ];
  });
  console.log('');
  console.log(
    table(['file', 'server', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'CPU µs/req', 'throughput'], rows),
  );
  console.log('');
  const r = (server: string, file: string) => rps.get(`${server} ${file}`);
  for (const f of FILES) {
    const trellis = r('trellis', f.label)!;
    const parts = ['nginx', 'serve-static', 'fastify-static']
      .filter((p) => r(p, f.label) !== undefined)
      .map((p) => `${ratio(trellis, r(p, f.label)!)} ${p}`);
    console.log(`${f.label}: trellis = ${parts.join(', ')}`);
  }
  const ss1k = r('serve-static', '1 KiB');
  const ss1m = r('serve-static', '1 MiB');
  if (ss1k !== undefined)
    console.log(verdict('1 KiB trellis / serve-static', r('trellis', '1 KiB')! / ss1k, 2.0));
  else console.log('1 KiB trellis / serve-static: serve-static not installed, not measured');
  console.log(verdict('1 KiB trellis / nginx', r('trellis', '1 KiB')! / r('nginx', '1 KiB')!, 0.35));
  if (ss1m !== undefined)
    console.log(verdict('1 MiB trellis / serve-static', r('trellis', '1 MiB')! / ss1m, 1.5));
  else console.log('1 MiB trellis / serve-static: serve-static not installed, not measured');
}
