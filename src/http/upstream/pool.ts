import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { buildConnector, type Dispatcher, Pool } from 'undici';
import type { KeyValueStore } from '../../stores/types.js';
import { type Balancer, createBalancer, type UpstreamFilter } from './balancers/index.js';
import { createDiscovery, type DiscoveredUpstream, type DiscoverySource } from './discovery/index.js';
import { hashKeyOf } from './hash-key.js';
import { HealthChecker } from './health-check.js';
import { type UpstreamMetrics, upstreamMetrics } from './metrics.js';
import { OutlierDetector } from './outlier.js';
import { ServiceRetryPolicy } from './retry.js';
import type { ServiceDef } from './schema.js';
import {
  expiringSoon,
  loadUpstreamTls,
  type TlsExpiry,
  tlsConnectOptions,
  tlsFailureReason,
  type UpstreamTlsMaterial,
} from './tls.js';
import type { AttemptOutcome, ServicePool, ServiceStatus, Timeouts, Upstream } from './types.js';
import { type Clock, UpstreamNode } from './upstream.js';

export interface ServicePoolDeps {
  logger: Logger;
  /** Upstream health, ejection and retry metrics go here when given. */
  metrics?: Registry;
  /** Wall clock in epoch ms; tests pass a fake one to step through ejections. */
  clock?: Clock;
  /**
   * The dispatcher for an origin instead of a keep-alive undici Pool (undefined: a Pool): an
   * embedder that reaches an origin another way (`trellis host` talks to a worker thread over a
   * MessagePort) keeps the whole forwarding exchange, retries and outlier feedback included.
   */
  dispatcherFor?: ((origin: URL) => Dispatcher | undefined) | undefined;
  /**
   * The files of `def.tls`, already read and checked (the runtime reads them at compile time, so
   * their contents decide whether a reload keeps a pool). Read from `baseDir` when not given.
   */
  tls?: UpstreamTlsMaterial | undefined;
  /** Where relative `tls:` file paths start when `tls` is not given (default: the working directory). */
  baseDir?: string | undefined;
  /** Opens the store of `discovery.registry` by name or URL (the runtime passes its shared stores). */
  keyValue?: ((store: string) => Promise<KeyValueStore>) | undefined;
}

const ANY: UpstreamFilter = () => true;
const AVAILABLE: UpstreamFilter = (u) => u.available;

/**
 * One service's upstreams: a keep-alive undici Pool per origin, the balancer over them, active
 * health checks, passive outlier detection and the retry policy. Build it from a validated
 * `ServiceDef`; `close()` stops the checks and closes the pools once in-flight requests finish.
 */
export class UpstreamPool implements ServicePool {
  readonly name: string;
  readonly def: ServiceDef;
  /**
   * The upstreams now: the static ones, then the discovered ones. One array changed in place when
   * discovery changes the set, so the outlier detector and the metrics always read the current one.
   */
  readonly nodes: UpstreamNode[];
  readonly timeouts: Timeouts;
  readonly retry: ServiceRetryPolicy;
  /** Settles once discovery has its first answer (or failure); at once for a static service. */
  readonly settled: Promise<void>;
  private balancer: Balancer;
  private readonly outlier: OutlierDetector;
  private readonly health: HealthChecker | undefined;
  private readonly metrics: UpstreamMetrics | undefined;
  private only: UpstreamNode | undefined;
  private closed: Promise<void> | undefined;
  private readonly statics: readonly UpstreamNode[];
  /** Discovered upstreams by id. */
  private discovered = new Map<string, UpstreamNode>();
  /** Removed upstreams with requests still in flight: their dispatcher closes after the last one. */
  private readonly retiring = new Map<string, UpstreamNode>();
  private readonly discovery: DiscoverySource | undefined;
  private readonly makeNode: (origin: URL, weight: number, servername?: string) => UpstreamNode;
  private readonly logger: Logger;
  private readonly listeners = new Set<() => void>();
  /** When the `tls:` block's client certificate and CA expire (admin API, metrics). */
  readonly tlsExpiries: readonly TlsExpiry[];

  constructor(name: string, def: ServiceDef, deps: ServicePoolDeps) {
    const clock = deps.clock ?? Date.now;
    const logger = deps.logger.child({ service: name });
    this.name = name;
    this.def = def;
    this.timeouts = { connect: def.connectTimeout, headers: def.headersTimeout, request: def.timeout };
    const material =
      def.tls === undefined
        ? undefined
        : (deps.tls ?? loadUpstreamTls(name, def.tls, deps.baseDir ?? process.cwd()));
    this.tlsExpiries = material?.expiries ?? [];
    for (const e of material === undefined ? [] : expiringSoon(material, clock())) {
      const days = Math.floor((e.notAfter - clock()) / 86_400_000);
      const what = e.field === 'ca' ? 'CA bundle' : 'client certificate';
      logger.warn(
        {
          service: name,
          field: `tls.${e.field}`,
          file: e.file,
          notAfter: new Date(e.notAfter).toISOString(),
        },
        days < 0
          ? `service "${name}": the ${what} ${e.file} has expired: renew it`
          : `service "${name}": the ${what} ${e.file} expires in ${days} days: renew it`,
      );
    }
    if (def.tls?.insecureSkipVerify === true) {
      logger.warn(
        { service: name, insecureSkipVerify: true },
        `INSECURE: service "${name}" does not verify its upstreams' TLS certificates (tls.insecureSkipVerify): anyone on the path can read and change its traffic`,
      );
    }
    this.logger = logger;
    this.makeNode = (origin, weight, servername) => {
      const alerts: { node?: UpstreamNode } = {};
      const dispatcher =
        deps.dispatcherFor?.(origin) ?? this.poolFor(origin, material, alerts, clock, servername);
      const node = new UpstreamNode(origin, weight, dispatcher, clock);
      node.servername = servername;
      alerts.node = node;
      return node;
    };
    this.statics = def.upstreams.map((entry) => {
      const { url, weight } = typeof entry === 'string' ? { url: entry, weight: 1 } : entry;
      return this.makeNode(new URL(url), weight);
    });
    this.nodes = [...this.statics];
    const seen = new Set<string>();
    for (const node of this.nodes) {
      if (seen.has(node.id)) logger.warn({ upstream: node.id }, 'upstream listed twice: it gets both shares');
      seen.add(node.id);
    }
    this.only = this.nodes.length === 1 ? this.nodes[0] : undefined;
    this.balancer = createBalancer(def.balance, this.nodes);
    this.metrics = deps.metrics ? upstreamMetrics(deps.metrics) : undefined;
    const { metrics } = this;
    this.retry = new ServiceRetryPolicy(def.retry, clock, Math.random, (retried) => {
      if (retried) metrics?.retries.inc({ service: name });
      else metrics?.retryBudgetExhausted.inc({ service: name });
    });
    this.outlier = new OutlierDetector(this.nodes, def.outlier, {
      clock,
      logger,
      onEject: (u) => metrics?.ejections.inc({ service: name, upstream: u.id }),
    });
    if (def.healthCheck) {
      this.health = new HealthChecker(this.nodes, def.healthCheck, {
        logger,
        tls: (origin, servername) =>
          origin.protocol === 'https:'
            ? tlsConnectOptions(tlsWith(def.tls, servername), material, origin)
            : undefined,
      });
      this.health.start();
    }
    metrics?.pools.add(this);
    if (def.discovery !== undefined) {
      this.discovery = createDiscovery(name, def.discovery, {
        logger,
        keyValue: deps.keyValue,
        onFailure: () => metrics?.discoveryFailures.inc({ service: name, source: this.discovery!.kind }),
      });
      this.discovery.start((found) => this.setDiscovered(found));
    }
    this.settled = this.discovery?.settled ?? Promise.resolve();
  }

  /**
   * Makes `found` the discovered upstreams: new ones join, gone ones leave (their in-flight
   * requests finish first), and those that stay keep their state (ejection, load, health). A
   * discovered upstream that is also listed in `upstreams:` is the static one.
   */
  setDiscovered(found: readonly DiscoveredUpstream[]): void {
    if (this.closed) return;
    const staticIds = new Set(this.statics.map((u) => u.id));
    const next = new Map<string, UpstreamNode>();
    const added: string[] = [];
    for (const d of found) {
      const origin = new URL(d.url);
      if (staticIds.has(origin.origin) || next.has(origin.origin)) continue;
      let node = this.discovered.get(origin.origin) ?? this.retiring.get(origin.origin);
      if (node === undefined) {
        node = this.makeNode(origin, d.weight, d.servername);
        node.source = this.discovery?.kind ?? 'static';
        added.push(node.id);
      } else {
        this.retiring.delete(node.id);
        node.weight = d.weight;
      }
      next.set(node.id, node);
    }
    const removed = [...this.discovered.values()].filter((u) => !next.has(u.id));
    this.discovered = next;
    this.nodes.splice(0, this.nodes.length, ...this.statics, ...next.values());
    this.rebalance();
    this.health?.track(this.nodes);
    for (const node of removed) this.retire(node);
    this.metrics?.discoveryUpdates.inc({ service: this.name, source: this.discovery?.kind ?? 'static' });
    for (const listener of this.listeners) listener();
    if (added.length > 0 || removed.length > 0) {
      this.logger.info(
        { added, removed: removed.map((u) => u.id), upstreams: this.nodes.length },
        'discovery changed the upstreams',
      );
    }
  }

  onUpstreamsChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A new balancer over the current set (weights and membership are fixed inside one). */
  private rebalance(): void {
    this.only = this.nodes.length === 1 ? this.nodes[0] : undefined;
    this.balancer = createBalancer(this.def.balance, this.nodes);
  }

  /** Closes a removed upstream's dispatcher now if idle, else after its last request (see `end`). */
  private retire(node: UpstreamNode): void {
    if (node.inFlight > 0) {
      this.retiring.set(node.id, node);
      return;
    }
    void node.dispatcher.close().catch(() => undefined);
  }

  /** A keep-alive undici Pool for one origin; an https one with the service's TLS settings. */
  private poolFor(
    origin: URL,
    material: UpstreamTlsMaterial | undefined,
    alerts: { node?: UpstreamNode },
    clock: Clock,
    discoveredName?: string,
  ): Dispatcher {
    const { def } = this;
    const https = origin.protocol === 'https:';
    const tls = https ? tlsConnectOptions(tlsWith(def.tls, discoveredName), material, origin) : undefined;
    // An https connection's own TLS errors are noted on the upstream: undici reports a TLS 1.3
    // refusal of the client certificate only as "other side closed" (see recentTlsFailure).
    const base = tls === undefined ? undefined : buildConnector({ ...tls, timeout: def.connectTimeout });
    const connect: buildConnector.connector | undefined =
      base &&
      ((options, callback) =>
        base(options, (err, socket) => {
          socket?.on('error', (e: unknown) => {
            const reason = tlsFailureReason(e);
            if (reason !== undefined && alerts.node) alerts.node.tlsAlert = { reason, at: clock() };
          });
          // biome-ignore lint/suspicious/noExplicitAny: undici's callback overloads (error xor socket)
          (callback as any)(err, socket);
        }));
    const pool = new Pool(origin.origin, {
      connections: def.pool.connections,
      pipelining: def.pool.pipelining,
      keepAliveTimeout: def.pool.keepAliveTimeout,
      connectTimeout: def.connectTimeout,
      headersTimeout: def.headersTimeout,
      // undici's body timeout is the longest silence between body chunks; the whole-request
      // timeout is the proxy's to enforce, and silence longer than that can never be fine.
      bodyTimeout: def.timeout,
      ...(connect === undefined ? {} : { connect }),
    });
    const servername = tls?.servername;
    if (servername === undefined) return pool;
    // undici takes a request's SNI name from its Host header, which a route with preserveHost
    // sets to the client's: pin it, so the name sent and verified is always the configured one.
    return pool.compose(
      (dispatch) => (opts, handler) =>
        dispatch({ ...opts, servername } as Dispatcher.DispatchOptions, handler),
    );
  }

  get upstreams(): readonly Upstream[] {
    return this.nodes;
  }

  pick(hashKey?: string, exclude?: ReadonlySet<Upstream>): Upstream | undefined {
    if (this.only) return this.only;
    const { balancer } = this;
    if (exclude === undefined || exclude.size === 0)
      return balancer.pick(AVAILABLE, hashKey) ?? balancer.pick(ANY, hashKey);
    // Widen step by step: available and untried, then untried, then available, then anyone. A
    // guess at a struggling upstream beats a certain 503, and a retry of the same one beats none.
    return (
      balancer.pick((u) => u.available && !exclude.has(u), hashKey) ??
      balancer.pick((u) => !exclude.has(u), hashKey) ??
      balancer.pick(AVAILABLE, hashKey) ??
      balancer.pick(ANY, hashKey)
    );
  }

  begin(upstream: Upstream): void {
    (upstream as UpstreamNode).inFlight++;
    this.retry.budget.recordAttempt();
  }

  end(upstream: Upstream, outcome: AttemptOutcome, _latencyMs: number): void {
    const node = upstream as UpstreamNode;
    node.inFlight--;
    if (node.inFlight === 0 && this.retiring.size > 0 && this.retiring.get(node.id) === node) {
      this.retiring.delete(node.id);
      void node.dispatcher.close().catch(() => undefined);
      return;
    }
    this.outlier.record(node, outcome);
  }

  hashKey(headers: IncomingHttpHeaders, clientIp: string): string | undefined {
    if (this.def.balance !== 'consistent-hash') return undefined;
    return hashKeyOf(this.def.hashOn ?? 'clientIp', headers, clientIp);
  }

  status(): ServiceStatus {
    return {
      name: this.name,
      balance: this.def.balance,
      upstreams: this.nodes.map((u) => ({
        id: u.id,
        weight: u.weight,
        healthy: u.healthy,
        ejected: u.ejected,
        ...(u.ejected ? { ejectedUntil: new Date(u.ejectedUntil).toISOString() } : {}),
        ejections: u.ejections,
        inFlight: u.inFlight,
        consecutiveFailures: u.consecutive5xx,
        ...(u.lastHealthCheck ? { lastHealthCheck: u.lastHealthCheck } : {}),
        source: u.source,
      })),
      ...(this.discovery === undefined ? {} : { discovery: this.discovery.status() }),
      ...(this.tlsExpiries.length === 0
        ? {}
        : {
            tls: this.tlsExpiries.map((e) => ({
              field: e.field,
              file: e.file,
              notAfter: new Date(e.notAfter).toISOString(),
              daysLeft: Math.floor((e.notAfter - Date.now()) / 86_400_000),
            })),
          }),
    };
  }

  /** Stops health checks and closes every upstream pool once its in-flight requests finish. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.metrics?.pools.delete(this);
      await this.discovery?.close();
      await this.health?.close();
      await Promise.all([...this.nodes, ...this.retiring.values()].map((u) => u.dispatcher.close()));
    })();
    return this.closed;
  }
}

/** The service's `tls:` with the SNI name of a discovered upstream, unless `tls.servername` sets one. */
function tlsWith(tls: ServiceDef['tls'], servername: string | undefined): ServiceDef['tls'] {
  if (servername === undefined || tls?.servername !== undefined) return tls;
  return { ...(tls ?? { minVersion: 'TLSv1.2', insecureSkipVerify: false }), servername };
}

/** Builds the upstream pool of service `name` from its validated definition. */
export function createServicePool(name: string, def: ServiceDef, deps: ServicePoolDeps): UpstreamPool {
  return new UpstreamPool(name, def, deps);
}
