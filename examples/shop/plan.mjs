// What `npm start` runs, read from the shop's files so that each port is written in one place:
// a copy of the files with other ports (the tests do this) runs a second shop beside the first.
//
//   gateway.yaml          the gateway; each upstream of `services.<name>` is one process of
//                         `services/<name>.mjs`, unless a part below serves that port
//   host.yaml             `trellis host`: orders (its config names the config server) and the job
//   pipeline.yaml         `trellis pipeline run`: the order pipeline
//   ambassador.yaml       `trellis ambassador`; its upstream is the payment provider's process
//   wishlist/sidecar.yaml `trellis sidecar` with the Python wishlist app
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parse } from 'yaml';

/** A process to start: `args` after `node`, the URL that says it is ready, the ports it holds. */
function proc(name, args, ready, ports, extra = {}) {
  return { name, args, ready, ports: ports.map(Number).filter((p) => p > 0), ...extra };
}

const read = (file) => parse(readFileSync(file, 'utf8'));

/**
 * The shop's processes in start order (`stage`: processes of one stage start together, each
 * stage once the previous one is ready), plus what the banner needs.
 */
export function planShop({ here, root, configFile, data }) {
  const dir = dirname(configFile);
  const cli = join(root, 'dist/cli/main.js');
  const file = (name) => join(dir, name);
  const gateway = read(configFile);
  const host = read(file('host.yaml'));
  const pipeline = read(file('pipeline.yaml'));
  const ambassador = read(file('ambassador.yaml'));
  const sidecar = read(file('wishlist/sidecar.yaml'));

  const orders = host.workloads.orders.config;
  const configUrl = new URL(orders.configServer);
  const hostPorts = Object.values(host.workloads).flatMap((w) => (w.listen ? [w.listen.port] : []));
  const servedByParts = new Set([...hostPorts, sidecar.listen.port]);
  const payments = ambassador.remotes.payments;
  const provider = new URL(payments.service.upstreams[0]);
  const input = pipeline.stages[0].input.http;
  const url = (port) => `http://127.0.0.1:${port}`;

  // Plain services: one process per upstream URL of each gateway service no part serves.
  const services = Object.entries(gateway.services ?? {}).flatMap(([service, def]) => {
    const urls = def.upstreams.map((u) => new URL(typeof u === 'string' ? u : u.url));
    return urls
      .filter((u) => !servedByParts.has(Number(u.port)))
      .map((u, i) => {
        const script = join(here, 'services', `${service}.mjs`);
        if (!existsSync(script)) {
          throw new Error(`no example service for "${service}" (${relative(root, script)})`);
        }
        const name = urls.length > 1 ? `${service}-${i + 1}` : service;
        return proc(name, [script, '--port', u.port, '--name', name], `${u.origin}/healthz`, [u.port]);
      });
  });
  services.push(
    proc(
      'payment-provider',
      [join(here, 'services/payment-provider.mjs'), '--port', provider.port, '--name', 'payment-provider'],
      `${provider.origin}/healthz`,
      [provider.port],
    ),
  );
  const configServer = proc(
    'config',
    [cli, 'config', 'serve', '--store', `sqlite:${join(data, 'config.db')}`, '--listen', configUrl.host],
    `${configUrl.origin}/healthz`,
    [configUrl.port],
    { env: { TRELLIS_CONFIG_WRITE_TOKEN: WRITE_TOKEN } },
  );
  const parts = [
    proc(
      'ambassador',
      [cli, 'ambassador', '-c', file('ambassador.yaml')],
      `${url(ambassador.admin.port)}/readyz`,
      [ambassador.admin.port, ...Object.values(ambassador.remotes).map((r) => r.listen?.port)],
    ),
    proc('pipeline', [cli, 'pipeline', 'run', file('pipeline.yaml')], `${url(pipeline.admin.port)}/readyz`, [
      pipeline.admin.port,
      input.port,
    ]),
    proc(
      'wishlist',
      [cli, 'sidecar', '-c', file('wishlist/sidecar.yaml'), '--', 'python3', join(here, 'wishlist/app.py')],
      `${url(sidecar.listen.port)}/healthz`,
      [sidecar.listen.port, sidecar.app.port, sidecar.api.port, sidecar.admin.port],
    ),
  ];
  const hostProc = proc('host', [cli, 'host', '-c', file('host.yaml')], `${url(host.admin.port)}/readyz`, [
    host.admin.port,
    host.listen?.port ?? 8080,
    orders.admin,
    ...hostPorts,
  ]);
  const gatewayProc = proc(
    'gateway',
    [cli, 'gateway', '-c', configFile],
    `${url(gateway.admin?.port ?? 9901)}/readyz`,
    [gateway.listen?.port ?? 8080, gateway.admin?.port ?? 9901],
    { terminal: true },
  );
  return {
    stages: [[...services, configServer], parts, [hostProc], [gatewayProc]],
    config: { url: configUrl.origin, seed: SEED },
    banner: {
      base: url(gateway.listen?.port ?? 8080),
      admin: url(gateway.admin?.port ?? 9901),
      web: gateway.frontends?.web?.pathPrefix ?? '/web',
      mobile: gateway.frontends?.mobile?.pathPrefix ?? '/mobile',
      config: configUrl.origin,
      pipelineInput: `${url(input.port)}${input.path}`,
      hostAdmin: `127.0.0.1:${host.admin.port}`,
      data,
      dir,
    },
  };
}

/** The config server's write token: a demo value, printed in the tour (a real one is a secret). */
export const WRITE_TOKEN = 'shop-demo-write-token';

/** The documents the shop starts with, written only where none exists yet (edits survive restarts). */
const SEED = {
  // The new checkout flow, rolled out to 20 % of customers (the same ones on every instance).
  'flags/new-checkout': { enabled: true, rollout: 20 },
  // Checkout settings the orders service follows live.
  'shop/checkout': { shipping: 9, freeShippingOver: 200 },
};
