import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerService } from '../../../src/http/upstream/discovery/register.js';
import { startDnsServer, type TestDnsServer } from '../../../src/http/upstream/discovery/testing.js';
import { openKeyValueStore } from '../../../src/stores/kv/index.js';
import type { KeyValueStore } from '../../../src/stores/types.js';
import {
  type AmbassadorProcess,
  type Origin,
  startAmbassadorCli,
  startOrigin,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

const run = promisify(execFile);

/**
 * `trellis ambassador` (the built CLI) finding its remotes' upstreams: in a real DNS server on
 * 127.0.0.1 whose SRV answer the test changes, and in a SQLite registry another process (this
 * test) registers instances in. curl is the client.
 */

const curl = async (url: string) => {
  const { stdout } = await run('curl', ['-s', '-w', ' %{http_code}', url]);
  return stdout;
};

/** Calls `url` with curl until every one of `wanted` is in an answer; the ms it took. */
async function untilAnswered(url: string, wanted: string[], ms: number): Promise<number> {
  const started = Date.now();
  const seen = new Set<string>();
  await waitUntil(
    async () => {
      const answer = await curl(url);
      for (const w of wanted) if (answer.includes(`"origin":"${w}"`)) seen.add(w);
      return wanted.every((w) => seen.has(w));
    },
    `answers from ${wanted.join(', ')}`,
    ms,
  );
  return Date.now() - started;
}

describe('trellis ambassador: discovery through the real CLI', () => {
  let dir: TempDir;
  let dns: TestDnsServer;
  let amb: AmbassadorProcess;
  let store: KeyValueStore;
  let ports: Record<string, number>;
  const o: Record<string, Origin> = {};

  beforeAll(async () => {
    dir = tempDir();
    for (const n of ['a', 'b', 'c']) o[n] = await startOrigin(n);
    o.down = await startOrigin('down', (_req, res) => {
      res.writeHead(503).end('down');
    });
    dns = await startDnsServer({
      '_http._tcp.payments.internal': [{ type: 'SRV', target: 'a.internal', port: o.a!.port, ttl: 1 }],
      'a.internal': [{ type: 'A', address: '127.0.0.1', ttl: 1 }],
      'b.internal': [{ type: 'A', address: '127.0.0.1', ttl: 1 }],
      '_http._tcp.flaky.internal': [{ type: 'SRV', target: 'a.internal', port: o.down!.port, ttl: 1 }],
    });
    const registry = `sqlite:${dir.path}/registry.db`;
    store = await openKeyValueStore(registry);
    const file = `${dir.path}/ambassador.yaml`;
    writeFileSync(
      file,
      `stores: { registry: '${registry}' }
remotes:
  payments:
    listen: { port: 0 }
    service:
      discovery:
        dns: { name: _http._tcp.payments.internal, type: SRV, servers: ['${dns.address}'], minTtl: 200ms }
  flaky:
    listen: { port: 0 }
    breaker: { consecutiveFailures: 2, halfOpenAfter: 60s }
    service:
      outlier: { consecutive5xx: 0, consecutiveConnectFailures: 0 }
      discovery:
        dns: { name: _http._tcp.flaky.internal, type: SRV, servers: ['${dns.address}'], minTtl: 200ms }
  inventory:
    listen: { port: 0 }
    service:
      discovery: { registry: { store: registry, prefix: services/inventory/ } }
`,
    );
    amb = await startAmbassadorCli(file);
    ports = amb.ports;
  }, 30_000);

  afterAll(async () => {
    await amb?.stop();
    await store?.close();
    await dns?.close();
    for (const origin of Object.values(o)) await origin.close();
    dir?.cleanup();
  });

  it('calls the new SRV targets within the TTL once the DNS answer changes', async () => {
    const url = `http://127.0.0.1:${ports.payments}/charge`;
    expect(await curl(url)).toMatch(/"origin":"a".* 200$/);
    dns.records['_http._tcp.payments.internal'] = [
      { type: 'SRV', target: 'a.internal', port: o.a!.port, ttl: 1 },
      { type: 'SRV', target: 'b.internal', port: o.b!.port, ttl: 1 },
    ];
    // TTL 1 s, plus curl's own start-up per call.
    expect(await untilAnswered(url, ['b'], 5_000)).toBeLessThan(2_500);
  });

  it('calls the instances registered in the SQLite registry by another process, and stops calling one that left', async () => {
    const url = `http://127.0.0.1:${ports.inventory}/stock`;
    expect(await curl(url)).toMatch(/TRELLIS_E_NO_UPSTREAM.* 503$/);
    const b = await registerService(store, { prefix: 'services/inventory/', url: o.b!.url, ttl: 2_000 });
    const c = await registerService(store, { prefix: 'services/inventory/', url: o.c!.url, ttl: 2_000 });
    await untilAnswered(url, ['b', 'c'], 10_000);
    await c.close();
    await waitUntil(
      async () => {
        const answers = await Promise.all(Array.from({ length: 4 }, () => curl(url)));
        return answers.every((a) => a.includes('"origin":"b"'));
      },
      'only b answering',
      10_000,
    );
    const admin = (await (await fetch(`http://127.0.0.1:${ports.admin}/admin/services`)).json()) as {
      services: {
        name: string;
        upstreams: { id: string; source: string }[];
        discovery?: { source: string };
      }[];
    };
    const inventory = admin.services.find((s) => s.name === 'inventory')!;
    expect(inventory.upstreams).toMatchObject([{ id: o.b!.url, source: 'registry' }]);
    expect(inventory.discovery).toMatchObject({ source: 'registry', target: 'services/inventory/' });
    await b.close();
  });

  it("drops the breaker's metric series of an upstream discovery took away", async () => {
    const url = `http://127.0.0.1:${ports.flaky}/`;
    const metrics = async () => (await fetch(`http://127.0.0.1:${ports.admin}/metrics`)).text();
    const upstreams = async () => {
      const admin = (await (await fetch(`http://127.0.0.1:${ports.admin}/admin/services`)).json()) as {
        services: { name: string; upstreams: { id: string; breaker: string }[] }[];
      };
      return admin.services.find((s) => s.name === 'flaky')!.upstreams;
    };
    // Two 503s open the breaker of the one upstream: its state is a series now.
    for (let i = 0; i < 3; i++) await curl(url);
    const [gone] = await upstreams();
    expect(gone!.breaker).toBe('open');
    const series = (text: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith('trellis_ambassador_breaker_') && l.includes(`upstream="${gone!.id}"`));
    expect(series(await metrics())).toEqual(
      expect.arrayContaining([
        `trellis_ambassador_breaker_state{remote="flaky",upstream="${gone!.id}"} 1`,
        `trellis_ambassador_breaker_transitions_total{remote="flaky",upstream="${gone!.id}",state="open"} 1`,
      ]),
    );
    // The DNS answer moves the remote to another upstream: the old one's series go with its breaker.
    dns.records['_http._tcp.flaky.internal'] = [
      { type: 'SRV', target: 'a.internal', port: o.a!.port, ttl: 1 },
    ];
    await untilAnswered(url, ['a'], 5_000);
    expect((await upstreams()).map((u) => u.id)).not.toContain(gone!.id);
    expect(series(await metrics())).toEqual([]);
  });
});
