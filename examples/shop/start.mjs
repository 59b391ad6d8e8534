#!/usr/bin/env node
// `npm start`: runs the example shop — its services, the Trellis parts (config server, host,
// pipeline, ambassador, sidecar) and `trellis gateway` in front of them — prints a tour of what
// to try, and stops everything on Ctrl-C / SIGTERM.
//
//   node examples/shop/start.mjs [--config FILE] [--data DIR] [--cluster [--prefix NAME]]
//
// What runs on which port is read from the shop's files (plan.mjs): a copy of gateway.yaml with
// the other files beside it, on other ports, runs a second shop beside the first. --data is where
// the SQLite files live (default examples/shop/.data): orders, configuration, queues, leases.
// --cluster (`npm run shop:cluster`) runs two instances of the gateway, the host and the pipeline
// on PostgreSQL, Redis, NATS JetStream and etcd instead (cluster.mjs), their names prefixed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { planShop, WRITE_TOKEN } from './plan.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const { values } = parseArgs({
  options: {
    config: { type: 'string', short: 'c' },
    data: { type: 'string' },
    cluster: { type: 'boolean' },
    prefix: { type: 'string' },
  },
});
if (values.prefix !== undefined && !/^[A-Za-z][A-Za-z0-9_]{0,30}$/.test(values.prefix)) {
  console.error('--prefix is a letter then letters, digits or _ (it names tables, keys and streams)');
  process.exit(2);
}
const configFile = resolve(values.config ?? join(here, 'gateway.yaml'));
const data = resolve(values.data ?? join(here, '.data'));
const cli = join(root, 'dist/cli/main.js');
// The web front's folder, absolute so a copy of gateway.yaml elsewhere still finds it; the data
// folder, for the files that name ${SHOP_DATA}.
process.env.SHOP_PUBLIC ??= join(here, 'public');
process.env.SHOP_DATA = data;

// Loaded into every child: it stops the child when this script dies, even by SIGKILL (see the file).
const withParent = pathToFileURL(join(here, 'with-parent.mjs')).href;
const children = [];
let stopping = false;
let ready = false;

function log(line) {
  process.stdout.write(`${line}\n`);
}

/**
 * Prefixes each line a child writes, so the terminal shows who said what. A Trellis part's JSON
 * log line is shortened to one readable line (its message, or the request for an access line);
 * health checks, every few seconds from the gateway, are left out.
 */
function relay(stream, name) {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      const text = line && readable(line);
      if (text) process.stdout.write(`[${name}] ${text}\n`);
    }
  });
}

function readable(line) {
  if (!line.startsWith('{')) return line;
  try {
    const e = JSON.parse(line);
    if (e.method && e.status) {
      const path = e.path ?? e.url ?? '';
      return path.endsWith('/healthz') ? '' : `${e.method} ${path} ${e.status} ${e.ms ?? '?'} ms`;
    }
    const err = e.err?.message ?? e.error?.message ?? (typeof e.error === 'string' ? e.error : '');
    return [e.level >= 50 ? 'error:' : e.level >= 40 ? 'warning:' : '', e.msg, err].filter(Boolean).join(' ');
  } catch {
    return line;
  }
}

function start(name, args, { terminal = false, restarts = 0, env } = {}) {
  // On a terminal the gateway writes straight to it, so its logs come out readable (pino-pretty).
  const stdio = terminal ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'];
  // Each child in its own process group: Ctrl-C reaches only this script, which stops the gateway
  // first and lets it drain (a second signal straight from the terminal would cut the drain short).
  const child = spawn(process.execPath, ['--import', withParent, ...args], {
    cwd: root,
    stdio,
    detached: true,
    env: { ...process.env, ...env },
  });
  child.label = name;
  if (!terminal) {
    relay(child.stdout, name);
    relay(child.stderr, name);
  }
  child.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  child.exited.then(({ code, signal }) => {
    if (stopping) return;
    log(`[shop] ${name} exited (${signal ?? `code ${code}`})`);
    // Without its gateway the shop is down, and a service that dies while starting (its port is
    // taken) leaves it broken: stop the rest instead of leaving them behind.
    if (name === 'gateway' || !ready) return stop(1);
    // A service that crashes later is restarted with backoff (1 s, 2 s, 4 s ... 30 s); meanwhile
    // the gateway's health check takes it out and the dashboard shows it failing.
    const delay = Math.min(30_000, 1000 * 2 ** restarts);
    log(`[shop] restarting ${name} in ${delay / 1000} s`);
    setTimeout(() => {
      if (stopping) return;
      children.splice(children.indexOf(child), 1);
      start(name, args, { restarts: restarts + 1, env });
    }, delay).unref();
  });
  children.push(child);
  return child;
}

/** True when something already listens on 127.0.0.1:port (another shop, or any other program). */
function portTaken(port) {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (err) => resolve(err.code === 'EADDRINUSE'));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(false)));
  });
}

/**
 * Polls a URL until it answers 2xx or the deadline passes. With `child`, the answer counts only
 * while that child is alive: a port held by another process must not pass for our child's.
 */
async function waitFor(url, deadlineMs = 30_000, child = undefined) {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`${child.label} exited before ${url} answered`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
      throw new Error(`${url} answered ${res.status}`);
    } catch {
      if (stopping) throw new Error('stopping');
      if (Date.now() > until) throw new Error(`${url} did not answer within ${deadlineMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  log('[shop] stopping…');
  // The gateways first, so they drain in-flight requests while the services still answer.
  const alive = (c) => c.exitCode === null && c.signalCode === null;
  const gateways = children.filter((c) => /^gateway(-\d+)?$/.test(c.label) && alive(c));
  for (const g of gateways) g.kill('SIGTERM');
  await Promise.race([Promise.all(gateways.map((g) => g.exited)), new Promise((r) => setTimeout(r, 12_000))]);
  for (const c of children) if (alive(c)) c.kill('SIGTERM');
  const all = Promise.all(children.map((c) => c.exited));
  const late = setTimeout(() => {
    for (const c of children) if (alive(c)) c.kill('SIGKILL');
  }, 5_000);
  await all;
  clearTimeout(late);
  log('[shop] stopped');
  process.exit(code);
}

process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
// The terminal closed: the children are in their own groups and would not hear it.
process.on('SIGHUP', () => stop(0));

/** Writes the shop's starting configuration where none exists yet (If-None-Match: *). */
async function seedConfig({ url, seed }) {
  for (const [key, value] of Object.entries(seed)) {
    const res = await fetch(`${url}/v1/config/${key}?format=json`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${WRITE_TOKEN}`,
        'if-none-match': '*',
        'x-trellis-author': 'shop',
        'x-trellis-message': 'the shop starts with this',
      },
      body: JSON.stringify(value),
    });
    await res.arrayBuffer();
    if (!res.ok && res.status !== 412) throw new Error(`seeding ${key} answered ${res.status}`);
  }
}

async function main() {
  if (!existsSync(cli)) {
    log('[shop] building Trellis first (npm run build)…');
    const r = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build failed');
  }
  mkdirSync(data, { recursive: true });
  const plan = await planShop({
    here,
    root,
    configFile,
    data,
    cluster: values.cluster === true,
    prefix: values.prefix ?? 'shop',
  });
  // Every port the shop will listen on must be free before anything starts: a second `npm start`
  // beside a running shop would otherwise look as if it worked while talking to the first one.
  const taken = [];
  for (const p of plan.stages.flat().flatMap((s) => s.ports)) if (await portTaken(p)) taken.push(p);
  if (taken.length > 0) {
    log(
      `[shop] cannot start: port${taken.length > 1 ? 's' : ''} ${taken.join(', ')} already in use.\n` +
        "[shop] Is another shop running? Stop it (Ctrl-C in its terminal), or run a copy of the shop's\n" +
        '[shop] files with other ports: node examples/shop/start.mjs --config my-copy/gateway.yaml',
    );
    process.exit(1);
  }
  // Stage by stage: what a stage needs is ready before it starts (the host's orders service reads
  // the config server at start; the gateway comes last, so its health checks find everyone up).
  for (const stage of plan.stages) {
    const started = stage.map((p) => ({
      p,
      child: start(p.name, p.args, { env: p.env, terminal: p.terminal && process.stdout.isTTY === true }),
    }));
    // Ready counts only while the child started here is alive: a port held by another process
    // must not pass for ours.
    await Promise.all(started.map(({ p, child }) => waitFor(p.ready, 60_000, child)));
    if (stage.some((p) => p.name === 'config')) await seedConfig(plan.config);
  }
  ready = true;
  log(tour(plan.banner));
}

function tour({
  base,
  admin,
  web,
  mobile,
  config,
  pipelineInput,
  hostAdmin,
  leases,
  data: dataDir,
  dir,
  cluster,
}) {
  const near = (f) => {
    const r = relative(process.cwd(), f);
    return r && !r.startsWith('..') ? r : f;
  };
  const shown = near(configFile);
  return `
Trellis example shop is running: gateway ${base}, dashboard ${admin}/

Try (one line per pattern):
  curl -si ${base}/api/catalog/products            # routing over two catalog instances: run it a few times, x-served-by alternates
  curl -s  ${base}${web}/products/1                # aggregation: four services composed into one answer
  curl -s  ${base}${mobile}/products/1             # backends for frontends: the same page for mobile, trimmed, two images
  curl -si ${base}${mobile}/products/4             # slow reviews miss mobile's timeout: trellis-completed: false
  curl -s  ${base}${web}/carts/alice               # a cart with product details fetched per item (fan-out)
  curl -s  ${base}${web}/carts/alice/checkout -X POST -H 'Idempotency-Key: try-1' -d '{"pay":"card"}'   # CQRS + ambassador: the order is placed and paid
  curl -s  ${base}/api/orders/alice                # CQRS: the order history read model
  curl -s  ${base}/api/wishlist/alice -X POST -d '{"productId":3}'   # sidecar: a Python service with state and pub/sub
  curl -s  ${base}/api/popular                     # counted from the wishlist.added deliveries
  curl -s  ${base}/api/warehouse/stock/1           # anti-corruption layer: modern JSON from the legacy SOAP warehouse
  curl -s  ${base}/api/stock/1                     # strangler fig: legacy answers, the new inventory is shadowed and diffed
  curl -si ${base}/                                # static content hosting: the web front, open it in a browser
  curl -s  ${admin}/admin/routes                   # routes grouped by frontend

And watch:
  gateway offloading  seq 20 | xargs -P 20 -I{} curl -s -o /dev/null -w '%{http_code} ' ${base}${mobile}/products/1   # 429s past 10/s
  configuration       export TRELLIS_CONFIG_SERVER=${config} TRELLIS_CONFIG_TOKEN=${WRITE_TOKEN}
                      echo '{"enabled": true, "rollout": 100}' | node dist/cli/main.js config set flags/new-checkout --format json
                      then check out again: every customer gets "flow": "new" (20 % did), no restart
  leader election     cat ${near(join(dataDir, 'restock-report.json'))}   # written every 5 s by one of two candidates: "ranBy"
                      node dist/cli/main.js leader status --group restock --store '${leases}'
  pipes and filters   tail ${near(join(dataDir, 'notifications.ndjson'))}   # each paid order, enriched and fraud-checked (${pipelineInput})
  consolidation       node dist/cli/main.js host status --admin ${hostAdmin}   # orders and both job candidates in one process
  ambassador          the payment provider fails every third call; checkouts still pass (retries, see the dashboard)
  routing failover    kill one catalog instance (ps ax | grep catalog.mjs): the gateway ejects it, the shop restarts it

${
  cluster
    ? `Cluster (kill -9 any one instance: the other carries on, and the shop restarts it):
  gateways   ${cluster.gateways.join(', ')}
  orders     ${cluster.orders.join(', ')}
  hosts      ${cluster.hosts.join(', ')}
  pipelines  ${cluster.pipelines.join(', ')}
The instances' files are in ${near(dir)}.

`
    : ''
}Dashboard: ${admin}/  one panel per part (routes, upstreams, orders' projections and flags, host, pipeline,
ambassador, sidecar). Edit ${cluster ? `the instances' files in ${near(dir)}` : `${shown} (or the files beside it)`} and save: each part reloads it.
Ctrl-C stops everything.
`;
}

main().catch((err) => {
  if (stopping) return;
  log(`[shop] failed to start: ${err.message}`);
  stop(1);
});
