// What `npm start` runs, read from the shop's files so that each port is written in one place:
// a copy of the files with other ports (the tests do this) runs a second shop beside the first.
//
//   gateway.yaml          the gateway; each upstream of `services.<name>` is one process of
//                         `services/<name>.mjs`, unless a part below serves that port
//   host.yaml             `trellis host`: orders (its config names the config server) and the job
//   pipeline.yaml         `trellis pipeline run`: the order pipeline
//   ambassador.yaml       `trellis ambassador`; its upstream is the payment provider's process
//   wishlist/sidecar.yaml `trellis sidecar` with the Python wishlist app
//
// With `cluster`, cluster.mjs derives two instances of the gateway, the host and the pipeline
// from these files, on PostgreSQL, Redis, NATS JetStream and etcd.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parse } from 'yaml';
import { clusterLayout } from './cluster.mjs';

/** A process to start: `args` after `node`, the URL that says it is ready, the ports it holds. */
function proc(name, args, ready, ports, extra = {}) {
  return { name, args, ready, ports: ports.map(Number).filter((p) => p > 0), ...extra };
}

/** The ports of a host's workloads that have their own `listen:`. */
const ownPorts = (h) => Object.values(h.doc.workloads).flatMap((w) => (w.listen ? [w.listen.port] : []));
const read = (file) => ({ file, doc: parse(readFileSync(file, 'utf8')) });
const url = (port) => `http://127.0.0.1:${port}`;

/** The shop's own files, for one instance of each part on embedded stores. */
function localLayout(base, data) {
  return {
    gateways: [base.gateway],
    hosts: [base.host],
    pipelines: [base.pipeline],
    sidecar: base.sidecar,
    ambassador: base.ambassador,
    configStore: `sqlite:${join(data, 'config.db')}`,
    leases: `sqlite:${join(data, 'leases.db')}`,
    folder: base.dir,
  };
}

/**
 * The shop's processes in start order (`stages`: processes of one stage start together, each
 * stage once the previous one is ready), plus what the banner needs.
 */
export async function planShop({ here, root, configFile, data, cluster = false, prefix = 'shop' }) {
  const dir = dirname(configFile);
  const cli = join(root, 'dist/cli/main.js');
  const base = {
    dir,
    gateway: read(configFile),
    host: read(join(dir, 'host.yaml')),
    pipeline: read(join(dir, 'pipeline.yaml')),
    ambassador: read(join(dir, 'ambassador.yaml')),
    sidecar: read(join(dir, 'wishlist/sidecar.yaml')),
  };
  const layout = cluster ? await clusterLayout(base, { data, prefix }) : localLayout(base, data);
  const many = (list, name) =>
    list.map((x, i) => ({ ...x, name: list.length > 1 ? `${name}-${i + 1}` : name }));
  const gateways = many(layout.gateways, 'gateway');
  const hosts = many(layout.hosts, 'host');
  const pipelines = many(layout.pipelines, 'pipeline');
  const sidecar = layout.sidecar.doc;
  const ambassador = layout.ambassador.doc;

  const configUrl = new URL(base.host.doc.workloads.orders.config.configServer);
  const ordersPorts = hosts.map((h) => h.doc.workloads.orders.listen.port);
  const servedByParts = new Set([...hosts.flatMap(ownPorts), sidecar.listen.port]);
  const provider = new URL(ambassador.remotes.payments.service.upstreams[0]);

  // Plain services: one process per upstream URL of each gateway service no part serves.
  const gateway = gateways[0].doc;
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
    [cli, 'config', 'serve', '--store', layout.configStore, '--listen', configUrl.host],
    `${configUrl.origin}/healthz`,
    [configUrl.port],
    { env: { TRELLIS_CONFIG_WRITE_TOKEN: WRITE_TOKEN } },
  );
  const parts = [
    proc(
      'ambassador',
      [cli, 'ambassador', '-c', layout.ambassador.file],
      `${url(ambassador.admin.port)}/readyz`,
      [ambassador.admin.port, ...Object.values(ambassador.remotes).map((r) => r.listen?.port)],
    ),
    ...pipelines.map((p) =>
      proc(p.name, [cli, 'pipeline', 'run', p.file], `${url(p.doc.admin.port)}/readyz`, [
        p.doc.admin.port,
        p.doc.stages[0].input.http.port,
      ]),
    ),
    proc(
      'wishlist',
      [cli, 'sidecar', '-c', layout.sidecar.file, '--', 'python3', join(here, 'wishlist/app.py')],
      `${url(sidecar.listen.port)}/healthz`,
      [sidecar.listen.port, sidecar.app.port, sidecar.api.port, sidecar.admin.port],
    ),
  ];
  const hostProcs = hosts.map((h) =>
    proc(h.name, [cli, 'host', '-c', h.file], `${url(h.doc.admin.port)}/readyz`, [
      h.doc.admin.port,
      // The shared listener opens only for mounted workloads.
      ...(Object.values(h.doc.workloads).some((w) => w.mount) ? [h.doc.listen?.port ?? 8080] : []),
      h.doc.workloads.orders.config.admin,
      ...ownPorts(h),
    ]),
  );
  const gatewayProcs = gateways.map((g, i) =>
    proc(
      g.name,
      [cli, 'gateway', '-c', g.file],
      `${url(g.doc.admin?.port ?? 9901)}/readyz`,
      [g.doc.listen?.port ?? 8080, g.doc.admin?.port ?? 9901],
      { terminal: i === 0 },
    ),
  );
  const input = pipelines[0].doc.stages[0].input.http;
  return {
    stages: [[...services, configServer], parts, hostProcs, gatewayProcs],
    config: { url: configUrl.origin, seed: SEED },
    banner: {
      base: url(gateway.listen?.port ?? 8080),
      admin: url(gateway.admin?.port ?? 9901),
      web: gateway.frontends?.web?.pathPrefix ?? '/web',
      mobile: gateway.frontends?.mobile?.pathPrefix ?? '/mobile',
      config: configUrl.origin,
      pipelineInput: `${url(input.port)}${input.path}`,
      hostAdmin: `127.0.0.1:${hosts[0].doc.admin.port}`,
      leases: layout.leases,
      data,
      dir: layout.folder,
      cluster: cluster
        ? {
            gateways: gateways.map((g) => url(g.doc.listen.port)),
            orders: ordersPorts.map(url),
            hosts: hosts.map((h) => url(h.doc.admin.port)),
            pipelines: pipelines.map((p) => url(p.doc.admin.port)),
          }
        : undefined,
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
