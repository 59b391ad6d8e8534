import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { messageOf } from '../../../core/errors.js';
import type { DnsDiscoveryDef } from './schema.js';
import {
  type DiscoveredUpstream,
  type DiscoveryDeps,
  type DiscoverySource,
  type DiscoveryStatus,
  normalise,
  sameSet,
} from './types.js';

/** After a failure the name is asked again after minTtl, doubling up to this (or maxTtl if shorter). */
const MAX_FAILURE_BACKOFF = 30_000;

/** SRV weights are 0..65535; the balancers take 1..128. */
const MAX_WEIGHT = 128;

interface Answer {
  upstreams: DiscoveredUpstream[];
  /** The shortest TTL of the records, ms. */
  ttlMs: number;
}

/**
 * DNS discovery with node:dns's Resolver (c-ares: its own servers, timeout and tries, no libuv
 * thread pool). A/AAAA give addresses on the configured port; SRV gives targets with their own
 * ports and weights, of which the lowest priority is used (RFC 2782), each target resolved with
 * the same resolver. The name is asked again when the shortest TTL runs out, clamped to
 * [minTtl, maxTtl]. A failed resolution (timeout, SERVFAIL, NXDOMAIN, an empty answer) keeps the
 * last good set and asks again sooner, backing off from minTtl.
 */
export class DnsDiscovery implements DiscoverySource {
  readonly kind = 'dns';
  readonly settled: Promise<void>;
  private readonly resolver: Resolver;
  private markSettled!: () => void;
  private onUpdate: ((upstreams: DiscoveredUpstream[]) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private failures = 0;
  private last: DiscoveredUpstream[] = [];
  private lastUpdate: number | undefined;
  private lastError: string | undefined;
  private nextAt: number | undefined;

  constructor(
    private readonly def: DnsDiscoveryDef,
    private readonly deps: DiscoveryDeps,
  ) {
    this.resolver = new Resolver({ timeout: def.timeout, tries: def.tries });
    if (def.servers !== undefined) this.resolver.setServers(def.servers);
    this.settled = new Promise((resolve) => {
      this.markSettled = resolve;
    });
  }

  start(onUpdate: (upstreams: DiscoveredUpstream[]) => void): void {
    this.onUpdate = onUpdate;
    void this.run();
  }

  status(): DiscoveryStatus {
    return {
      source: 'dns',
      target: `${this.def.type} ${this.def.name}`,
      upstreams: this.last.length,
      ...(this.lastUpdate === undefined ? {} : { lastUpdate: new Date(this.lastUpdate).toISOString() }),
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
      failures: this.failures,
      ...(this.nextAt === undefined ? {} : { nextResolution: new Date(this.nextAt).toISOString() }),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.resolver.cancel();
    this.markSettled();
  }

  private async run(): Promise<void> {
    const { minTtl, maxTtl } = this.def;
    let delay: number;
    try {
      const answer = await this.resolve();
      if (this.closed) return;
      this.failures = 0;
      this.lastError = undefined;
      this.lastUpdate = Date.now();
      // The same answer again changes nothing: the pool keeps its balancer as it is.
      if (!sameSet(answer.upstreams, this.last)) {
        this.last = answer.upstreams;
        this.onUpdate?.(answer.upstreams);
      }
      delay = Math.min(maxTtl, Math.max(minTtl, answer.ttlMs));
    } catch (err) {
      if (this.closed) return;
      this.failures++;
      this.lastError = messageOf(err);
      this.deps.onFailure?.();
      delay = Math.min(maxTtl, MAX_FAILURE_BACKOFF, minTtl * 2 ** (this.failures - 1));
      this.deps.logger.warn(
        {
          dns: this.def.name,
          type: this.def.type,
          err: this.lastError,
          failures: this.failures,
          retryMs: delay,
        },
        this.last.length > 0
          ? `DNS discovery of ${this.def.name} failed: keeping the last ${this.last.length} upstream(s)`
          : `DNS discovery of ${this.def.name} failed: the service has no upstream yet`,
      );
    }
    this.markSettled();
    this.nextAt = Date.now() + delay;
    this.timer = setTimeout(() => void this.run(), delay);
    this.timer.unref();
  }

  private async resolve(): Promise<Answer> {
    const { def } = this;
    if (def.type === 'SRV') return this.resolveSrv();
    const answer = await this.addresses(def.name, def.type);
    return {
      upstreams: normalise(
        answer.addresses.map((address) => ({ ...this.upstream(address, def.port!, def.name), weight: 1 })),
      ),
      ttlMs: answer.ttlMs,
    };
  }

  /**
   * SRV: the records of the lowest priority, each target resolved to addresses (A, or AAAA when
   * the target has no A record). node:dns does not return an SRV record's own TTL, so the TTL is
   * the shortest of the targets' address records (maxTtl caps it).
   */
  private async resolveSrv(): Promise<Answer> {
    const records = await this.resolver.resolveSrv(this.def.name);
    if (records.length === 0) throw new Error(`no SRV records for ${this.def.name}`);
    const lowest = Math.min(...records.map((r) => r.priority));
    const group = records.filter((r) => r.priority === lowest);
    const top = Math.max(...group.map((r) => r.weight));
    // Weight 0 means "rarely" (RFC 2782): the smallest share, 1.
    const weightOf = (w: number) =>
      top <= MAX_WEIGHT ? Math.max(1, w) : Math.max(1, Math.round((w * MAX_WEIGHT) / top));
    let ttlMs = Number.POSITIVE_INFINITY;
    const upstreams: DiscoveredUpstream[] = [];
    const problems: string[] = [];
    await Promise.all(
      group.map(async (r) => {
        const target = r.name.replace(/\.$/, '');
        try {
          const answer =
            isIP(target) !== 0 ? { addresses: [target], ttlMs } : await this.targetAddresses(target);
          ttlMs = Math.min(ttlMs, answer.ttlMs);
          for (const address of answer.addresses)
            upstreams.push({ ...this.upstream(address, r.port, target), weight: weightOf(r.weight) });
        } catch (err) {
          problems.push(`${target}: ${messageOf(err)}`);
        }
      }),
    );
    if (upstreams.length === 0)
      throw new Error(`no SRV target of ${this.def.name} resolved (${problems.join('; ')})`);
    if (problems.length > 0)
      this.deps.logger.warn({ dns: this.def.name, problems }, 'some SRV targets did not resolve: left out');
    return { upstreams: normalise(upstreams), ttlMs: Number.isFinite(ttlMs) ? ttlMs : this.def.minTtl };
  }

  private async targetAddresses(target: string): Promise<{ addresses: string[]; ttlMs: number }> {
    try {
      return await this.addresses(target, 'A');
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENODATA') throw err;
      return this.addresses(target, 'AAAA');
    }
  }

  private async addresses(name: string, type: 'A' | 'AAAA'): Promise<{ addresses: string[]; ttlMs: number }> {
    const records =
      type === 'A'
        ? await this.resolver.resolve4(name, { ttl: true })
        : await this.resolver.resolve6(name, { ttl: true });
    if (records.length === 0) throw new Error(`no ${type} records for ${name}`);
    return {
      addresses: records.map((r) => r.address),
      ttlMs: Math.min(...records.map((r) => r.ttl)) * 1000,
    };
  }

  /** The upstream at `address:port`; an https one keeps the DNS name for SNI and verification. */
  private upstream(address: string, port: number, name: string): Omit<DiscoveredUpstream, 'weight'> {
    const host = isIP(address) === 6 ? `[${address}]` : address;
    const url = new URL(`${this.def.scheme}://${host}:${port}`).origin;
    return this.def.scheme === 'https' ? { url, servername: name } : { url };
  }
}
