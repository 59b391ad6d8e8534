import { isIP } from 'node:net';
import { z } from 'zod';
import { messageOf } from '../../../core/errors.js';
import { duration } from '../../../core/units.js';
import { schemeOf } from '../../../stores/connection.js';

/**
 * `discovery:` of a service: where its upstreams come from besides (or instead of) the static
 * `upstreams:` list. One source per service: DNS (A, AAAA or SRV records, re-resolved at their
 * TTL) or a registry in a KeyValueStore (services register themselves under a prefix and keep
 * their key alive; the pool watches the prefix).
 */

const HOST_RE = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9])?)*\.?$/i;

/** `127.0.0.1`, `127.0.0.1:5353`, `::1`, `[::1]:5353`: a DNS server, as node:dns `setServers` takes it. */
const dnsServer = z.string().refine(
  (s) => {
    if (isIP(s) !== 0) return true;
    const v4 = /^(\d+\.\d+\.\d+\.\d+):(\d{1,5})$/.exec(s);
    const v6 = /^\[([0-9a-f:.]+)\]:(\d{1,5})$/i.exec(s);
    const m = v4 ?? v6;
    return m !== null && isIP(m[1]!) !== 0 && Number(m[2]) >= 1 && Number(m[2]) <= 65_535;
  },
  { message: 'a DNS server is an IP address with an optional port: 127.0.0.1, 10.0.0.2:5353 or [::1]:53' },
);

const PORT = 'a port is a whole number from 1 to 65535';

export const dnsDiscoverySchema = z
  .strictObject({
    /** The name to resolve: `api.internal` (A/AAAA) or `_http._tcp.api.internal` (SRV). */
    name: z.string().regex(HOST_RE, 'write a DNS name like api.internal or _http._tcp.api.internal'),
    /** A: IPv4 addresses, AAAA: IPv6 addresses, SRV: targets with their own ports and weights. */
    type: z.enum(['A', 'AAAA', 'SRV'], { error: 'type is A, AAAA or SRV' }).default('A'),
    /** The upstreams' port for A/AAAA (SRV records carry their own). */
    port: z.number().int(PORT).min(1, PORT).max(65_535, PORT).optional(),
    /** The upstreams' scheme: https upstreams use the service's `tls:` (SNI: this name). */
    scheme: z.enum(['http', 'https'], { error: 'scheme is http or https' }).default('http'),
    /** DNS servers to ask instead of the system's (`/etc/resolv.conf`). */
    servers: z.array(dnsServer).min(1, 'list at least one server, or leave servers out').optional(),
    /** Shortest time between resolutions (a TTL of 0 or 1 s does not make a query storm). */
    minTtl: duration().default(1_000),
    /** Longest time an answer is kept before asking again, whatever its TTL. */
    maxTtl: duration().default(300_000),
    /** One query's timeout (node:dns retries it up to `tries` times). */
    timeout: duration().default(2_000),
    tries: z.number().int().min(1).max(10).default(2),
  })
  .superRefine((d, ctx) => {
    if (d.type === 'SRV' && d.port !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['port'],
        message: 'SRV records carry their own ports: remove port, or use type A/AAAA',
      });
    }
    if (d.type !== 'SRV' && d.port === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['port'],
        message: `type ${d.type} gives addresses only: set the upstreams' port (port: 8080)`,
      });
    }
    if (d.minTtl < 100) {
      ctx.addIssue({ code: 'custom', path: ['minTtl'], message: 'minTtl must be at least 100ms' });
    }
    if (d.maxTtl < d.minTtl) {
      ctx.addIssue({ code: 'custom', path: ['maxTtl'], message: 'maxTtl must be at least minTtl' });
    }
  });

export const registryDiscoverySchema = z.strictObject({
  /** A store of the file's `stores:` (or a KeyValueStore URL): sqlite, postgres, redis, etcd. */
  store: z.string().min(1, 'name a store from stores: (or write a KeyValueStore URL)'),
  /** The keys the service's instances register under, like `services/payments/`. */
  prefix: z
    .string()
    .min(1, 'write the prefix the instances register under, like services/payments/')
    .refine((p) => p.endsWith('/'), {
      message: 'end the prefix with / (services/payments/), so services/pay does not match services/payments',
    }),
});

export const discoverySchema = z
  .strictObject({ dns: dnsDiscoverySchema.optional(), registry: registryDiscoverySchema.optional() })
  .refine((d) => (d.dns === undefined) !== (d.registry === undefined), {
    message:
      'write discovery as { dns: { name, type, port } } or { registry: { store, prefix } }: one source per service',
  });

export type DiscoveryDef = z.output<typeof discoverySchema>;
export type DnsDiscoveryDef = z.output<typeof dnsDiscoverySchema>;
export type RegistryDiscoveryDef = z.output<typeof registryDiscoverySchema>;

/**
 * Why a registry's `store` cannot be opened with the file's `stores:`, or undefined: checked at
 * validation so `trellis validate` says it, not only a failed start.
 */
export function registryStoreProblem(store: string, stores: Record<string, string>): string | undefined {
  const url = stores[store] ?? store;
  if (url === 'memory' || url === 'memory:') {
    return 'a registry needs a store the instances can write to: name a sqlite, postgres, redis or etcd store (memory is only this process)';
  }
  if (stores[store] === undefined && !store.includes(':')) {
    const names = Object.keys(stores);
    return `unknown store "${store}": name one from the file's stores: section${names.length > 0 ? ` (${names.join(', ')})` : ''}, or write a KeyValueStore URL`;
  }
  try {
    schemeOf(url, `the registry store "${store}"`, REGISTRY_SCHEMES);
  } catch (err) {
    return `${messageOf(err)} (a registry is a KeyValueStore)`;
  }
  return undefined;
}

const REGISTRY_SCHEMES = ['sqlite', 'postgres', 'redis', 'etcd'] as const;
