/**
 * `npm run bench -- offloading [--rounds 3] [--duration 5] [--connections 64]`
 *
 * One run, one `trellis gateway` process (pinned to CPU 0) in front of an nginx origin (CPU 1,
 * with wrk). The same kind of route is measured bare and with offloading middlewares:
 *
 * - `plain`: no middlewares (the gateway still adds request ids);
 * - `chain`: cors + jwt (RS256, static JWKS) + rateLimit (memory, a limit never reached);
 * - `big` vs `big+compress`: a 10 KB JSON body, without and with compress (gzip, by Accept-Encoding);
 * - `cache miss` vs `cache hit`: the cache middleware in front of a response it may not store
 *   (`no-store`) and of one it may (`max-age`).
 *
 * Targets (issue 4): chain >= 0.75x plain (the chain costs at most 25%), cache hit >= 2x miss.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import {
  benchDir,
  canPin,
  freePort,
  LOAD_CPU,
  measureTargets,
  ratio,
  ratioTable,
  runArgs,
  runBench,
  startNginx,
  startTrellis,
  TARGET_CPU,
  type Target,
  table,
  verdict,
  waitForTargets,
  writeBenchFile,
} from './_support/index.js';

const args = runArgs({ rounds: 3, duration: 5, connections: 64, warmup: 2 });
const { rounds, connections, warmupS } = args;
const durationS = Math.min(args.durationS, 60);
const SMALL = JSON.stringify({ id: 42, name: 'trellis', tags: ['gateway', 'bench'], ok: true });
const BIG = JSON.stringify(
  Array.from({ length: 200 }, (_, i) => ({ id: i, sku: `SKU-${1000 + i}`, price: i * 1.5 })),
).slice(0, 10 * 1024 - 2);
const BIG_BODY = `${BIG.slice(0, BIG.lastIndexOf('},') + 1)}]`;

await runBench(main);

/** nginx caps a `return` text at 4 KB, so the 10 KB body is served as a file from `www`. */
function originNginx(port: number, www: string): string {
  const q = (s: string) => s.replace(/'/g, "\\'");
  return `  server {
    listen 127.0.0.1:${port} backlog=4096;
    default_type application/json;
    location = /big { root ${www}; }
    location /cacheable { add_header Cache-Control "public, max-age=3600"; return 200 '${q(SMALL)}'; }
    location /uncacheable { add_header Cache-Control "no-store"; return 200 '${q(SMALL)}'; }
    location / { return 200 '${q(SMALL)}'; }
  }`;
}

async function main(): Promise<void> {
  console.log(
    `offloading bench: ${rounds} rounds x ${durationS}s, wrk -t1 -c${connections}, gateway on CPU ${TARGET_CPU}, wrk + origin on CPU ${LOAD_CPU}${canPin ? '' : ' (one CPU: NOT pinned)'}`,
  );
  console.log(`work dir (configs, logs): ${benchDir()}`);
  const originPort = await freePort();
  const www = join(benchDir(), 'www');
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, 'big'), BIG_BODY);
  await startNginx('offloading-origin', originPort, originNginx(originPort, www), LOAD_CPU);

  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'RS256' };
  const token = await new SignJWT({ sub: 'bench-user', scope: 'read' })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench' })
    .setIssuer('https://idp.bench')
    .setAudience('bench')
    .setExpirationTime('2h')
    .sign(privateKey);

  const port = await freePort();
  const file = writeBenchFile(
    'trellis',
    'gateway.yaml',
    `listen: { host: 127.0.0.1, port: ${port} }
accessLog: false
services:
  origin: { upstreams: ['http://127.0.0.1:${originPort}'] }
middlewares:
  browser: { cors: { origins: ['https://app.bench'] } }
  auth:
    jwt: { jwks: { keys: [${JSON.stringify(jwk)}] }, issuer: 'https://idp.bench', audience: bench }
  limit: { rateLimit: { points: 1000000000, per: 1m, key: { jwtClaim: sub } } }
  squeeze: { compress: { encodings: [gzip] } }
  edge-cache: { cache: {} }
routes:
  - match: { path: /plain }
    proxy: { service: origin }
  - match: { path: /chain }
    middlewares: [browser, auth, limit]
    proxy: { service: origin }
  - match: { path: /big }
    proxy: { service: origin }
  - match: { path: /big-compressed }
    middlewares: [squeeze]
    proxy: { service: origin, rewrite: /big }
  - match: { path: /cacheable }
    middlewares: [edge-cache]
    proxy: { service: origin }
  - match: { path: /uncacheable }
    middlewares: [edge-cache]
    proxy: { service: origin }
`,
  );
  const gateway = startTrellis(
    'trellis-gateway',
    ['gateway', '-c', file, '--no-watch', '--log-level', 'warn'],
    {
      cpu: TARGET_CPU,
    },
  );
  const base = `http://127.0.0.1:${port}`;
  const gz = { 'accept-encoding': 'gzip' };
  const target = (name: string, path: string, headers?: Record<string, string>): Target => ({
    name,
    url: base + path,
    proc: gateway,
    headers,
  });
  const targets: Target[] = [
    target('plain', '/plain'),
    target('chain (cors+jwt+rateLimit)', '/chain', {
      authorization: `Bearer ${token}`,
      origin: 'https://app.bench',
    }),
    target('big 10KB', '/big', gz),
    target('big 10KB + compress', '/big-compressed', gz),
    target('cache miss', '/uncacheable'),
    target('cache hit', '/cacheable'),
  ];
  await waitForTargets(targets.slice(0, 1), 20_000);
  await check(base, targets);
  console.log(`warm-up: ${warmupS}s per target`);
  const { summary: s } = await measureTargets(targets, { ...args, durationS, cpu: LOAD_CPU });
  console.log(
    `\nOffloading middlewares, median of ${rounds} interleaved rounds (${durationS}s each, wrk -c${connections})\n`,
  );
  console.log(
    table(
      ['target', 'req/s', 'p99 ms', 'errors', 'gateway CPU µs/req'],
      [...s].map(([name, v]) => [name, v.rps, v.p99, v.errors, v.cpuUs]),
    ),
  );
  const get = (n: string) => s.get(n)!;
  const plain = get('plain');
  const chain = get('chain (cors+jwt+rateLimit)');
  const big = get('big 10KB');
  const compressed = get('big 10KB + compress');
  const miss = get('cache miss');
  const hit = get('cache hit');
  console.log('\nratios');
  console.log(
    ratioTable([
      ['chain / plain (req/s)', ratio(chain.rps, plain.rps)],
      ['chain / plain (req per gateway CPU-second)', ratio(plain.cpuUs, chain.cpuUs)],
      ['compress / no compress, 10 KB JSON (req/s)', ratio(compressed.rps, big.rps)],
      ['cache hit / cache miss (req/s)', ratio(hit.rps, miss.rps)],
      ['cache hit / cache miss (req per gateway CPU-second)', ratio(miss.cpuUs, hit.cpuUs)],
    ]),
  );
  console.log('');
  console.log(verdict('chain / plain req/s', chain.rps / plain.rps, 0.75));
  console.log(verdict('cache hit / miss req/s', hit.rps / miss.rps, 2));
  if ([...s.values()].some((v) => v.errors > 0))
    console.log('WARNING: some target answered with errors (see the table)');
  console.log('\nThe machine may be shared: compare the ratios of one run, not absolute req/s.');
}

/** Every target must answer 200 with what it should (a 401 or 429 would be a fast, wrong win). */
async function check(base: string, targets: Target[]): Promise<void> {
  for (const t of targets) {
    const r = await fetch(t.url, { headers: t.headers });
    const body = Buffer.from(await r.arrayBuffer());
    if (r.status !== 200) throw new Error(`${t.name}: ${r.status} ${body.toString().slice(0, 200)}`);
    const encoded = r.headers.get('content-encoding') === 'gzip';
    if (encoded !== t.url.endsWith('/big-compressed'))
      throw new Error(`${t.name}: compressed should be ${!encoded}`);
    if (t.url.startsWith(`${base}/big`) && body.toString() !== BIG_BODY)
      throw new Error(`${t.name}: wrong body`);
  }
  const second = await fetch(`${base}/cacheable`);
  await second.arrayBuffer();
  if (!second.headers.get('cache-status')?.includes('hit'))
    throw new Error('cache hit target is not served from the cache');
  const miss = await fetch(`${base}/uncacheable`);
  await miss.arrayBuffer();
  if (!miss.headers.get('cache-status')?.includes('fwd=miss'))
    throw new Error('cache miss target is served from the cache');
}
