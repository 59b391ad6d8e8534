import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../core/logger.js';
import { waitFor } from '../testing.js';
import { DnsDiscovery } from './dns.js';
import { dnsDiscoverySchema } from './schema.js';
import { startDnsServer, type TestDnsServer } from './testing.js';
import type { DiscoveredUpstream } from './types.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function server(records: TestDnsServer['records']): Promise<TestDnsServer> {
  const dns = await startDnsServer(records);
  cleanup.push(() => dns.close());
  return dns;
}

/** A started source and every set it handed over. */
function discover(def: Record<string, unknown>) {
  const sets: DiscoveredUpstream[][] = [];
  let failures = 0;
  const source = new DnsDiscovery(dnsDiscoverySchema.parse(def), {
    logger: silentLogger(),
    onFailure: () => failures++,
  });
  cleanup.push(() => source.close());
  source.start((found) => sets.push(found));
  return {
    source,
    sets,
    failures: () => failures,
    urls: () => (sets.at(-1) ?? []).map((u) => u.url),
  };
}

describe('DnsDiscovery', () => {
  it('resolves A records on the given port and follows a changed answer within the TTL', async () => {
    const dns = await server({ 'api.internal': [{ type: 'A', address: '10.0.0.1', ttl: 1 }] });
    const d = discover({ name: 'api.internal', port: 8080, servers: [dns.address], minTtl: '100ms' });
    await d.source.settled;
    expect(d.urls()).toEqual(['http://10.0.0.1:8080']);
    dns.records['api.internal'] = [
      { type: 'A', address: '10.0.0.2', ttl: 1 },
      { type: 'A', address: '10.0.0.3', ttl: 1 },
    ];
    const changed = Date.now();
    await waitFor(() => d.urls().length === 2, 3_000, 'the new answer');
    // A TTL of 1 s: asked again after about 1 s, not later.
    expect(Date.now() - changed).toBeLessThan(1_800);
    expect(d.urls()).toEqual(['http://10.0.0.2:8080', 'http://10.0.0.3:8080']);
    expect(d.source.status()).toMatchObject({
      source: 'dns',
      target: 'A api.internal',
      upstreams: 2,
      failures: 0,
    });
  });

  it('clamps the TTL: a long one to maxTtl, a zero one to minTtl', async () => {
    const dns = await server({ 'long.internal': [{ type: 'A', address: '10.0.0.1', ttl: 3600 }] });
    const d = discover({
      name: 'long.internal',
      port: 80,
      servers: [dns.address],
      minTtl: '100ms',
      maxTtl: '300ms',
    });
    await d.source.settled;
    await waitFor(() => dns.questions.length >= 3, 2_000, 'asking again after maxTtl');
    dns.records['zero.internal'] = [{ type: 'A', address: '10.0.0.9', ttl: 0 }];
    const z = discover({ name: 'zero.internal', port: 80, servers: [dns.address], minTtl: '500ms' });
    await z.source.settled;
    const asked = dns.questions.filter((q) => q === 'A zero.internal').length;
    await new Promise((r) => setTimeout(r, 300));
    // TTL 0 does not make a query storm: nothing more before minTtl.
    expect(dns.questions.filter((q) => q === 'A zero.internal').length).toBe(asked);
  });

  it('keeps the last good set while resolution fails, and says so in its status', async () => {
    const dns = await server({ 'api.internal': [{ type: 'A', address: '10.0.0.1', ttl: 0 }] });
    const d = discover({
      name: 'api.internal',
      port: 8080,
      servers: [dns.address],
      minTtl: '100ms',
      timeout: '200ms',
      tries: 1,
    });
    await d.source.settled;
    dns.fail = true;
    await waitFor(() => d.failures() >= 2, 3_000, 'failed resolutions');
    expect(d.urls()).toEqual(['http://10.0.0.1:8080']);
    expect(d.sets.every((s) => s.length > 0)).toBe(true);
    expect(d.source.status()).toMatchObject({ upstreams: 1, lastError: expect.stringMatching(/SERVFAIL/) });
    dns.fail = false;
    dns.silent = true; // a timeout is a failure too
    const before = d.failures();
    await waitFor(() => d.failures() > before, 3_000, 'a timed-out resolution');
    expect(d.urls()).toEqual(['http://10.0.0.1:8080']);
    dns.silent = false;
    delete dns.records['api.internal']; // NXDOMAIN: kept as well
    const nx = d.failures();
    await waitFor(() => d.failures() > nx, 3_000, 'NXDOMAIN');
    expect(d.urls()).toEqual(['http://10.0.0.1:8080']);
    dns.records['api.internal'] = [{ type: 'A', address: '10.0.0.7', ttl: 0 }];
    await waitFor(() => d.urls()[0] === 'http://10.0.0.7:8080', 3_000, 'recovery');
    expect(d.source.status().failures).toBe(0);
    expect(d.source.status().lastError).toBeUndefined();
  });

  it('resolves AAAA records into bracketed origins', async () => {
    const dns = await server({ 'v6.internal': [{ type: 'AAAA', address: '::1', ttl: 5 }] });
    const d = discover({ name: 'v6.internal', type: 'AAAA', port: 9000, servers: [dns.address] });
    await d.source.settled;
    expect(d.urls()).toEqual(['http://[::1]:9000']);
  });

  it('uses the lowest SRV priority, the records’ ports and weights, each target resolved by the same server', async () => {
    const dns = await server({
      '_http._tcp.api.internal': [
        { type: 'SRV', target: 'a.internal', port: 8001, priority: 10, weight: 3 },
        { type: 'SRV', target: 'b.internal', port: 8002, priority: 10, weight: 0 },
        { type: 'SRV', target: 'backup.internal', port: 8003, priority: 20, weight: 1 },
      ],
      'a.internal': [{ type: 'A', address: '10.0.0.1', ttl: 2 }],
      'b.internal': [{ type: 'A', address: '10.0.0.2', ttl: 2 }],
      'backup.internal': [{ type: 'A', address: '10.0.0.3', ttl: 2 }],
    });
    const d = discover({
      name: '_http._tcp.api.internal',
      type: 'SRV',
      scheme: 'https',
      servers: [dns.address],
    });
    await d.source.settled;
    expect(d.sets.at(-1)).toEqual([
      { url: 'https://10.0.0.1:8001', weight: 3, servername: 'a.internal' },
      { url: 'https://10.0.0.2:8002', weight: 1, servername: 'b.internal' },
    ]);
    expect(dns.questions).not.toContain('A backup.internal');
  });

  it('scales SRV weights above 128 into the balancers’ range', async () => {
    const dns = await server({
      '_x._tcp.w.internal': [
        { type: 'SRV', target: '10.0.0.1', port: 1, weight: 60_000 },
        { type: 'SRV', target: '10.0.0.2', port: 2, weight: 15_000 },
      ],
    });
    const d = discover({ name: '_x._tcp.w.internal', type: 'SRV', servers: [dns.address] });
    await d.source.settled;
    expect(d.sets.at(-1)!.map((u) => u.weight)).toEqual([128, 32]);
  });
});

describe('dnsDiscoverySchema', () => {
  const problem = (def: Record<string, unknown>) =>
    dnsDiscoverySchema
      .safeParse(def)
      .error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)
      .join('; ');

  it('explains what is wrong', () => {
    expect(problem({ name: 'api.internal' })).toBe(
      "port: type A gives addresses only: set the upstreams' port (port: 8080)",
    );
    expect(problem({ name: '_x._tcp.api', type: 'SRV', port: 1 })).toBe(
      'port: SRV records carry their own ports: remove port, or use type A/AAAA',
    );
    expect(problem({ name: 'not a name', port: 1 })).toBe(
      'name: write a DNS name like api.internal or _http._tcp.api.internal',
    );
    expect(problem({ name: 'a.b', port: 1, servers: ['dns.google'] })).toBe(
      'servers.0: a DNS server is an IP address with an optional port: 127.0.0.1, 10.0.0.2:5353 or [::1]:53',
    );
    expect(problem({ name: 'a.b', port: 1, type: 'MX' })).toBe('type: type is A, AAAA or SRV');
    expect(problem({ name: 'a.b', port: 1, minTtl: '5s', maxTtl: '1s' })).toBe(
      'maxTtl: maxTtl must be at least minTtl',
    );
    expect(
      problem({ name: 'a.b', port: 1, servers: ['127.0.0.1:5353', '[::1]:53', '10.0.0.2'] }),
    ).toBeUndefined();
  });
});
