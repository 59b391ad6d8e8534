import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { buildConnector, type Dispatcher, Pool } from 'undici';
import { type Balancer, createBalancer, type UpstreamFilter } from './balancers/index.js';
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
  readonly nodes: readonly UpstreamNode[];
  readonly timeouts: Timeouts;
  readonly retry: ServiceRetryPolicy;
  private readonly balancer: Balancer;
  private readonly outlier: OutlierDetector;
  private readonly health: HealthChecker | undefined;
  private readonly metrics: UpstreamMetrics | undefined;
  private readonly only: UpstreamNode | undefined;
  private closed: Promise<void> | undefined;
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
    this.nodes = def.upstreams.map((entry) => {
      const { url, weight } = typeof entry === 'string' ? { url: entry, weight: 1 } : entry;
      const origin = new URL(url);
      const alerts: { node?: UpstreamNode } = {};
      const dispatcher = deps.dispatcherFor?.(origin) ?? this.poolFor(origin, material, alerts, clock);
      const node = new UpstreamNode(origin, weight, dispatcher, clock);
      alerts.node = node;
      return node;
    });
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
        tls: (origin) =>
          origin.protocol === 'https:' ? tlsConnectOptions(def.tls, material, origin) : undefined,
      });
      this.health.start();
    }
    metrics?.pools.add(this);
  }

  /** A keep-alive undici Pool for one origin; an https one with the service's TLS settings. */
  private poolFor(
    origin: URL,
    material: UpstreamTlsMaterial | undefined,
    alerts: { node?: UpstreamNode },
    clock: Clock,
  ): Dispatcher {
    const { def } = this;
    const https = origin.protocol === 'https:';
    const tls = https ? tlsConnectOptions(def.tls, material, origin) : undefined;
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
      })),
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
      await this.health?.close();
      await Promise.all(this.nodes.map((u) => u.dispatcher.close()));
    })();
    return this.closed;
  }
}

/** Builds the upstream pool of service `name` from its validated definition. */
export function createServicePool(name: string, def: ServiceDef, deps: ServicePoolDeps): UpstreamPool {
  return new UpstreamPool(name, def, deps);
}
