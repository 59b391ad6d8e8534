#!/usr/bin/env node
// `npm start`: runs the example shop — its services and `trellis gateway` in front of them —
// prints the URLs to try, and stops everything on Ctrl-C / SIGTERM.
//
//   node examples/shop/start.mjs [--config FILE]
//
// Which services to start, and on which ports, is read from the gateway file itself: each
// upstream of `services.<name>` becomes one instance of `services/<name>.mjs`. So a copy of the
// file with other ports runs a second shop beside the first.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' } } });
const configFile = resolve(values.config ?? join(here, 'gateway.yaml'));
const cli = join(root, 'dist/cli/main.js');
// The web front's folder, absolute so a copy of gateway.yaml elsewhere still finds it.
process.env.SHOP_PUBLIC ??= join(here, 'public');

// Loaded into every child: it stops the child when this script dies, even by SIGKILL (see the file).
const withParent = pathToFileURL(join(here, 'with-parent.mjs')).href;
const children = [];
let stopping = false;
let ready = false;

function log(line) {
  process.stdout.write(`${line}\n`);
}

/** Prefixes each line a child writes, so the terminal shows who said what. */
function relay(stream, name) {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const line of lines) if (line) process.stdout.write(`[${name}] ${line}\n`);
  });
}

function start(name, args, { terminal = false, restarts = 0 } = {}) {
  // On a terminal the gateway writes straight to it, so its logs come out readable (pino-pretty).
  const stdio = terminal ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'];
  // Each child in its own process group: Ctrl-C reaches only this script, which stops the gateway
  // first and lets it drain (a second signal straight from the terminal would cut the drain short).
  const child = spawn(process.execPath, ['--import', withParent, ...args], {
    cwd: root,
    stdio,
    detached: true,
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
      start(name, args, { restarts: restarts + 1 });
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
  // The gateway first, so it drains in-flight requests while the services still answer.
  const gateway = children.find((c) => c.label === 'gateway');
  const alive = (c) => c.exitCode === null && c.signalCode === null;
  if (gateway && alive(gateway)) {
    gateway.kill('SIGTERM');
    await Promise.race([gateway.exited, new Promise((r) => setTimeout(r, 12_000))]);
  }
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

async function main() {
  if (!existsSync(cli)) {
    log('[shop] building Trellis first (npm run build)…');
    const r = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build failed');
  }
  const config = parse(readFileSync(configFile, 'utf8'));
  const port = config.listen?.port ?? 8080;
  const adminPort = config.admin?.port ?? 9901;
  // One process per upstream URL of each service, on that URL's port.
  const instances = Object.entries(config.services ?? {}).flatMap(([service, def]) => {
    const script = join(here, 'services', `${service}.mjs`);
    if (!existsSync(script))
      throw new Error(`no example service for "${service}" (${relative(root, script)})`);
    return def.upstreams.map((upstream, i) => ({
      script,
      name: def.upstreams.length > 1 ? `${service}-${i + 1}` : service,
      url: new URL(typeof upstream === 'string' ? upstream : upstream.url),
    }));
  });
  // Every port the shop will listen on must be free before anything starts: a second `npm start`
  // beside a running shop would otherwise look as if it worked while talking to the first one.
  const taken = [];
  for (const p of [port, adminPort, ...instances.map((i) => Number(i.url.port))]) {
    if (await portTaken(p)) taken.push(p);
  }
  if (taken.length > 0) {
    log(
      `[shop] cannot start: port${taken.length > 1 ? 's' : ''} ${taken.join(', ')} already in use.\n` +
        '[shop] Is another shop running? Stop it (Ctrl-C in its terminal), or run a copy of the gateway\n' +
        '[shop] file with other ports: node examples/shop/start.mjs --config my-gateway.yaml',
    );
    process.exit(1);
  }
  for (const { script, name, url } of instances) start(name, [script, '--port', url.port, '--name', name]);
  await Promise.all(instances.map(({ url }) => waitFor(`${url.origin}/healthz`)));

  const gateway = start('gateway', [cli, 'gateway', '-c', configFile], {
    terminal: process.stdout.isTTY === true,
  });
  const base = `http://127.0.0.1:${port}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  // Ready means the listeners are bound and the configuration is loaded, by the gateway started here.
  await waitFor(`${admin}/readyz`, 30_000, gateway);

  ready = true;
  const web = config.frontends?.web?.pathPrefix ?? '/web';
  const mobile = config.frontends?.mobile?.pathPrefix ?? '/mobile';
  const near = relative(process.cwd(), configFile);
  const shown = near && !near.startsWith('..') ? near : configFile;
  log(`
Trellis example shop is running: gateway ${base}, admin ${admin}

Try:
  curl -si ${base}/api/catalog/products            # routing over two catalog instances: run it a few times, x-served-by alternates
  curl -s  ${base}${web}/products/1                # web product page: four services composed into one answer
  curl -s  ${base}${mobile}/products/1             # the same page for mobile: trimmed, two images
  curl -si ${base}${mobile}/products/4             # slow reviews miss mobile's timeout: trellis-completed: false
  curl -s  ${base}${web}/carts/alice               # a cart with product details fetched per item (fan-out)
  curl -s  ${base}${web}/carts/alice/checkout -X POST -d '{"pay":"card"}'   # an unsafe last step
  curl -s  ${base}/api/warehouse/stock/1           # anti-corruption layer: modern JSON from the legacy SOAP warehouse
  curl -si ${base}/                                # the web front (static:), open it in a browser
  curl -sI ${base}/products/1                      # a client-side route: the same page (spa)
  curl -s  ${admin}/admin/routes                   # routes grouped by frontend

Dashboard (open it in a browser): ${admin}/  (routes, upstream health, traffic, last reload)
To see balancing and ejection: kill one catalog instance (ps ax | grep catalog.mjs); the gateway ejects it
and the dashboard shows it failing; the shop restarts it.

Edit ${shown} and save: the gateway reloads it (a broken file is refused, traffic keeps flowing).
Ctrl-C stops everything.
`);
}

main().catch((err) => {
  if (stopping) return;
  log(`[shop] failed to start: ${err.message}`);
  stop(1);
});
