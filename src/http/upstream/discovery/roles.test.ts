import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAmbassador } from '../../../ambassador/ambassador.js';
import { ConfigError } from '../../../core/config.js';
import { startGateway } from '../../../gateway/gateway.js';
import { openKeyValueStore } from '../../../stores/kv/index.js';
import { registerService } from './register.js';
import { startDnsServer, type TestDnsServer } from './testing.js';

/**
 * Discovery through the roles that use the shared upstream layer: a gateway `services:` entry and
 * an ambassador remote find their upstreams in a real DNS server (whose answers change) and in a
 * KeyValueStore registry.
 */

interface Named {
  server: Server;
  host: string;
}

/** Origins answering their own name, one per loopback address, all on the same port (A records carry no port). */
async function originsOnOnePort(hosts: string[]): Promise<{ port: number; origins: Named[] }> {
  const origins: Named[] = [];
  let port = 0;
  for (const host of hosts) {
    const server = createServer((_req, res) => res.end(host));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    port = (server.address() as AddressInfo).port;
    origins.push({ server, host });
  }
  return { port, origins };
}

const dir = mkdtempSync(join(tmpdir(), 'trellis-discovery-roles-'));
let dns: TestDnsServer;
let port: number;
let origins: Named[];
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  dns = await startDnsServer();
  ({ port, origins } = await originsOnOnePort(['127.0.0.1', '127.0.0.2', '127.0.0.3']));
});
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});
afterAll(async () => {
  await dns.close();
  for (const o of origins) await new Promise((r) => o.server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function body(url: string): Promise<string> {
  const res = await fetch(url);
  return `${res.status} ${await res.text()}`;
}

/** Calls `url` until every one of `wanted` has answered; the ms it took. */
async function untilAnswered(url: string, wanted: string[], ms = 5_000): Promise<number> {
  const started = Date.now();
  const seen = new Set<string>();
  while (!wanted.every((w) => seen.has(w))) {
    if (Date.now() - started > ms)
      throw new Error(`after ${ms} ms, answers seen: ${[...seen].join(', ')}; wanted ${wanted.join(', ')}`);
    seen.add(await body(url));
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
}

describe('DNS answers change: new upstreams are used within the TTL', () => {
  it('through the gateway', async () => {
    dns.records['api.internal'] = [{ type: 'A', address: '127.0.0.1', ttl: 1 }];
    const gw = await startGateway({
      label: 'gw.yaml',
      text: `listen: { port: 0, host: 127.0.0.1 }
admin: { enabled: false }
services:
  api:
    discovery: { dns: { name: api.internal, port: ${port}, servers: ['${dns.address}'], minTtl: 100ms } }
routes:
  - { match: { pathPrefix: / }, proxy: { service: api } }
`,
    });
    stops.push(() => gw.stop(1_000));
    const url = `http://127.0.0.1:${gw.ports.main}/`;
    // The first answer was awaited at load: no 503 before it.
    expect(await body(url)).toBe('200 127.0.0.1');
    dns.records['api.internal'] = [
      { type: 'A', address: '127.0.0.2', ttl: 1 },
      { type: 'A', address: '127.0.0.3', ttl: 1 },
    ];
    // TTL 1 s: both new upstreams answer within it (plus requests' time and a loaded machine's slack).
    expect(await untilAnswered(url, ['200 127.0.0.2', '200 127.0.0.3'])).toBeLessThan(2_000);
    const after = await Promise.all(Array.from({ length: 10 }, () => body(url)));
    expect(after).not.toContain('200 127.0.0.1');
  });

  it('through the ambassador, whose admin API shows the set and where it came from', async () => {
    dns.records['_http._tcp.payments.internal'] = [{ type: 'SRV', target: 'p1.internal', port }];
    dns.records['p1.internal'] = [{ type: 'A', address: '127.0.0.1', ttl: 1 }];
    dns.records['p2.internal'] = [{ type: 'A', address: '127.0.0.2', ttl: 1 }];
    const amb = await startAmbassador({
      label: 'ambassador.yaml',
      admin: { host: '127.0.0.1', port: 0 },
      text: `remotes:
  payments:
    listen: { port: 0 }
    service:
      balance: least-request
      discovery:
        dns: { name: _http._tcp.payments.internal, type: SRV, servers: ['${dns.address}'], minTtl: 100ms }
`,
    });
    stops.push(() => amb.stop(1_000));
    const url = `http://127.0.0.1:${amb.ports.payments}/`;
    expect(await body(url)).toBe('200 127.0.0.1');
    dns.records['_http._tcp.payments.internal'] = [
      { type: 'SRV', target: 'p1.internal', port },
      { type: 'SRV', target: 'p2.internal', port },
    ];
    expect(await untilAnswered(url, ['200 127.0.0.2'])).toBeLessThan(2_000);
    const admin = (await (await fetch(`http://127.0.0.1:${amb.ports.admin}/admin/services`)).json()) as {
      services: { name: string; upstreams: { id: string; source: string }[]; discovery: unknown }[];
    };
    const payments = admin.services.find((s) => s.name === 'payments')!;
    expect(payments.upstreams.map((u) => [u.id, u.source])).toEqual([
      [`http://127.0.0.1:${port}`, 'dns'],
      [`http://127.0.0.2:${port}`, 'dns'],
    ]);
    expect(payments.discovery).toMatchObject({
      source: 'dns',
      target: 'SRV _http._tcp.payments.internal',
      upstreams: 2,
      failures: 0,
    });
    // The DNS server goes wrong: the ambassador keeps calling the last good set.
    dns.fail = true;
    await new Promise((r) => setTimeout(r, 1_300));
    expect(await untilAnswered(url, ['200 127.0.0.1', '200 127.0.0.2'])).toBeLessThan(2_000);
    const metrics = await (await fetch(`http://127.0.0.1:${amb.ports.admin}/metrics`)).text();
    expect(metrics).toMatch(
      /trellis_upstream_discovery_failures_total\{service="payments",source="dns"\} [1-9]/,
    );
    dns.fail = false;
  });
});

describe('a KeyValueStore registry', () => {
  it('through the ambassador: instances that register are called, one that leaves is not', async () => {
    const storeUrl = `sqlite:${join(dir, 'registry.db')}`;
    const amb = await startAmbassador({
      label: 'ambassador.yaml',
      admin: false,
      text: `stores: { registry: '${storeUrl}' }
remotes:
  payments:
    listen: { port: 0 }
    service:
      discovery: { registry: { store: registry, prefix: services/payments/ } }
`,
    });
    stops.push(() => amb.stop(1_000));
    const url = `http://127.0.0.1:${amb.ports.payments}/`;
    expect(await body(url)).toMatch(/^503 .*TRELLIS_E_NO_UPSTREAM/);
    const store = await openKeyValueStore(storeUrl);
    stops.push(() => store.close());
    const one = await registerService(store, {
      prefix: 'services/payments/',
      url: `http://127.0.0.1:${port}`,
      ttl: 2_000,
    });
    const two = await registerService(store, {
      prefix: 'services/payments/',
      url: `http://127.0.0.3:${port}`,
      ttl: 2_000,
    });
    stops.push(
      () => one.close(),
      () => two.close(),
    );
    await untilAnswered(url, ['200 127.0.0.1', '200 127.0.0.3']);
    await two.close();
    const gone = Date.now();
    let answers: string[] = [];
    do {
      answers = await Promise.all(Array.from({ length: 6 }, () => body(url)));
    } while (answers.includes('200 127.0.0.3') && Date.now() - gone < 5_000);
    expect(answers).toEqual(Array(6).fill('200 127.0.0.1'));
  });

  it('keeps watching across a reload that keeps the service, and follows a reload that changes the prefix', async () => {
    const storeUrl = `sqlite:${join(dir, 'reload.db')}`;
    const file = (prefix: string, extra = '') => `stores: { registry: '${storeUrl}' }
remotes:
  payments:
    listen: { port: 0 }
    service:
      discovery: { registry: { store: registry, prefix: ${prefix} } }
${extra}`;
    const amb = await startAmbassador({
      label: 'ambassador.yaml',
      admin: false,
      text: file('services/payments/'),
    });
    stops.push(() => amb.stop(1_000));
    const url = `http://127.0.0.1:${amb.ports.payments}/`;
    const store = await openKeyValueStore(storeUrl);
    stops.push(() => store.close());
    const reg = (prefix: string, host: string) =>
      registerService(store, { prefix, url: `http://${host}:${port}`, ttl: 2_000 }).then((r) => {
        stops.push(() => r.close());
        return r;
      });
    await reg('services/payments/', '127.0.0.1');
    await untilAnswered(url, ['200 127.0.0.1']);
    // Another remote joins: payments keeps its pool, and its registry store must stay open.
    const other = `  other:\n    listen: { port: 0 }\n    service: { upstreams: ['http://127.0.0.1:${port}'] }\n`;
    expect(await amb.applyConfig(file('services/payments/', other), 'ambassador.yaml')).toMatchObject({
      ok: true,
    });
    await new Promise((r) => setTimeout(r, 200)); // the retired generation is released
    await reg('services/payments/', '127.0.0.2');
    await untilAnswered(url, ['200 127.0.0.1', '200 127.0.0.2']);
    // A new prefix: a new pool watching it.
    expect(await amb.applyConfig(file('services/payments-v2/'), 'ambassador.yaml')).toMatchObject({
      ok: true,
    });
    expect(await body(url)).toMatch(/^503 .*TRELLIS_E_NO_UPSTREAM/);
    await reg('services/payments-v2/', '127.0.0.3');
    await untilAnswered(url, ['200 127.0.0.3']);
  });

  it('refuses a configuration naming a store it does not have, with the fix in the message', async () => {
    const start = startAmbassador({
      label: 'ambassador.yaml',
      admin: false,
      text: `remotes:
  payments:
    listen: { port: 0 }
    service:
      discovery: { registry: { store: nowhere, prefix: services/payments/ } }
`,
    });
    await expect(start).rejects.toThrow(
      /ambassador\.yaml:5:\d+ remotes\.payments\.service\.discovery\.registry\.store: unknown store "nowhere": name one from the file's stores: section, or write a KeyValueStore URL/,
    );
  });

  it('explains a discovery block that cannot work', async () => {
    const start = startGateway({
      label: 'gw.yaml',
      text: `listen: { port: 0, host: 127.0.0.1 }
admin: { enabled: false }
services:
  api:
    discovery: { dns: { name: api.internal, port: 80 }, registry: { store: s, prefix: x/ } }
  web:
    discovery: { registry: { store: s, prefix: services/web } }
routes:
  - { match: { pathPrefix: / }, proxy: { service: api } }
`,
    });
    const err = await start.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(
      'services.api.discovery: write discovery as { dns: { name, type, port } } or { registry: { store, prefix } }: one source per service',
    );
    expect((err as Error).message).toContain(
      'services.web.discovery.registry.prefix: end the prefix with / (services/payments/)',
    );
    const memory = await startGateway({
      label: 'gw.yaml',
      text: `listen: { port: 0, host: 127.0.0.1 }
admin: { enabled: false }
services:
  api: { discovery: { registry: { store: memory, prefix: services/api/ } } }
  queue: { discovery: { registry: { store: 'nats://127.0.0.1:4222', prefix: services/queue/ } } }
routes:
  - { match: { pathPrefix: / }, proxy: { service: api } }
`,
    }).catch((e: unknown) => e);
    expect((memory as Error).message).toMatch(
      /services\.api\.discovery\.registry\.store: a registry needs a store the instances can write to/,
    );
    expect((memory as Error).message).toMatch(
      /services\.queue\.discovery\.registry\.store: the registry store "nats:\/\/127\.0\.0\.1:4222" has no "nats" backend: use one of sqlite, postgres, redis, etcd \(a registry is a KeyValueStore\)/,
    );
  });
});
