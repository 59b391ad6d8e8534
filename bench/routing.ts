/**
 * `npm run bench -- routing [seconds]`: the gateway's route matching over 1,000 routes (static
 * paths, `:param`s, wildcards, exact and `*.wildcard` hosts, a few header conditions), through
 * the matcher the gateway compiles (`compileRoutes` in src/gateway/router.ts). Target: >= 1M
 * matches per second. Beside it, a bare find-my-way lookup over the same paths shows the ceiling
 * of the radix tree underneath.
 */
import FindMyWay from 'find-my-way';
import { compileRoutes, type RouteEntry } from '../src/runtime/router.js';
import { holdBenchLock, table, verdict } from './_support/index.js';

const seconds = Number(process.argv[2] ?? 3);
// Alone on the machine, as far as our own benchmarks go.
holdBenchLock();

interface Probe {
  method: string;
  host: string;
  path: string;
  headers: Record<string, string>;
  /** The route value expected to win, or -1 for no match. */
  expect: number;
}

const routes: RouteEntry<number>[] = [];
const probes: Probe[] = [];
const add = (match: RouteEntry<number>['match']) => routes.push({ match, value: routes.length }) - 1;
const probe = (path: string, expect: number, host = 'gw.example.com', headers: Record<string, string> = {}) =>
  probes.push({ method: 'GET', host, path, headers, expect });

// Static paths, some with a method list.
for (let i = 0; i < 420; i++) {
  const id = add({
    path: `/api/v${i % 4}/resource-${i}/list`,
    ...(i % 3 === 0 ? { methods: ['GET', 'POST'] } : {}),
  });
  probe(`/api/v${i % 4}/resource-${i}/list`, id);
}
// 300 parameterised paths.
for (let i = 0; i < 300; i++) {
  const id = add({ path: `/users-${i}/:userId/orders/:orderId` });
  probe(`/users-${i}/u${i}/orders/o${i * 7}`, id);
}
// 150 wildcards and prefixes.
for (let i = 0; i < 100; i++) {
  const id = add({ path: `/static-${i}/*` });
  probe(`/static-${i}/css/site-${i}.css`, id);
}
for (let i = 0; i < 50; i++) {
  const id = add({ pathPrefix: `/docs-${i}` });
  probe(`/docs-${i}/guide/page-${i}`, id);
}
// Virtual hosts: 20 routes on 10 exact hosts, 10 on 10 wildcard hosts.
for (let i = 0; i < 10; i++) {
  const a = add({ hosts: [`svc-${i}.example.com`], path: '/health' });
  const b = add({ hosts: [`svc-${i}.example.com`], path: '/items/:id' });
  probe('/health', a, `svc-${i}.example.com`);
  probe(`/items/${i}`, b, `svc-${i}.example.com:8080`);
}
for (let i = 0; i < 10; i++) {
  const id = add({ hosts: [`*.tenant-${i}.example.net`], pathPrefix: '/app' });
  probe(`/app/home`, id, `shop.tenant-${i}.example.net`);
}
// Header conditions and a priority override on one shared path.
const canary = add({ path: '/checkout', headers: { 'x-canary': 'true' } });
const plain = add({ path: '/checkout' });
probe('/checkout', canary, 'gw.example.com', { 'x-canary': 'true' });
probe('/checkout', plain);
// Fill to 1,000 with versioned API routes.
while (routes.length < 1000) {
  const n = routes.length;
  const id = add({ path: `/v2/catalog-${n}/:sku`, methods: ['GET'] });
  probe(`/v2/catalog-${n}/sku-${n}`, id);
}
// Misses are part of real traffic too.
for (let i = 0; i < 50; i++) probe(`/nothing-here-${i}/x`, -1);

const compileStart = performance.now();
const compiled = compileRoutes(routes);
const compileMs = performance.now() - compileStart;

// Every probe must land where expected, or the figure below means nothing.
for (const p of probes) {
  const hit = compiled.match(p.method, p.host, p.path, p.headers, '');
  const got = hit?.value ?? -1;
  if (got !== p.expect)
    throw new Error(`routing bench: ${p.host}${p.path} matched ${got}, expected ${p.expect}`);
}

// Shuffle so branch prediction and caches see a mixed stream, not runs of one shape.
for (let i = probes.length - 1; i > 0; i--) {
  const j = Math.floor(Math.random() * (i + 1));
  [probes[i], probes[j]] = [probes[j]!, probes[i]!];
}

const raw = FindMyWay();
for (const r of routes) {
  const pattern = r.match.path ?? `${r.match.pathPrefix}/*`;
  for (const method of ['GET', 'HEAD'])
    if (!raw.find(method as 'GET', pattern)) raw.on(method as 'GET', pattern, () => {});
}

interface Rate {
  /** Matches per wall-clock second. */
  wall: number;
  /** Matches per second of CPU this process got: steadier on a shared machine. */
  cpu: number;
}

/** Runs `fn` over every probe in batches for about `seconds`. */
function measure(fn: (p: Probe) => unknown): Rate {
  let sink = 0;
  const batch = probes.length * 20;
  const until = performance.now() + seconds * 1000;
  let done = 0;
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  // Bounded in time, and in count as a guard against a clock that stalls.
  while (performance.now() < until && done < 200_000_000) {
    for (let i = 0; i < batch; i++) if (fn(probes[i % probes.length]!)) sink++;
    done += batch;
  }
  const cpu = process.cpuUsage(cpuStart);
  const elapsed = (performance.now() - start) / 1000;
  if (sink < 0) console.log(sink);
  return { wall: done / elapsed, cpu: done / ((cpu.user + cpu.system) / 1e6) };
}

// Warm up both (JIT), then measure.
const trellis = (p: Probe) => compiled.match(p.method, p.host, p.path, p.headers, '');
const bare = (p: Probe) => raw.find(p.method as 'GET', p.path);
for (let i = 0; i < 200_000; i++) {
  trellis(probes[i % probes.length]!);
  bare(probes[i % probes.length]!);
}
const trellisRate = measure(trellis);
const bareRate = measure(bare);

console.log(
  `\nRoute matching: ${routes.length} routes, ${probes.length} distinct requests, ${seconds}s each\n`,
);
console.log(
  table(
    ['matcher', 'matches/s', 'matches per CPU-second', 'ns/match (CPU)'],
    [
      ['trellis compileRoutes().match', trellisRate.wall, trellisRate.cpu, 1e9 / trellisRate.cpu],
      [
        'find-my-way find() alone (path only, no hosts/conditions)',
        bareRate.wall,
        bareRate.cpu,
        1e9 / bareRate.cpu,
      ],
    ],
  ),
);
console.log(`\ncompile time for ${routes.length} routes: ${compileMs.toFixed(0)} ms`);
console.log(`trellis / bare find-my-way (per CPU-second): ${(trellisRate.cpu / bareRate.cpu).toFixed(2)}x`);
console.log(verdict('matches/s vs 1M', trellisRate.wall / 1e6, 1));
console.log(verdict('matches per CPU-second vs 1M', trellisRate.cpu / 1e6, 1));
console.log('\nThe machine may be shared: matches per CPU-second is the steadier figure.');
