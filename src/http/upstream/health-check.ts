import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import { Agent, type Dispatcher } from 'undici';
import type { HealthCheckDef } from './schema.js';
import type { UpstreamNode } from './upstream.js';

/** Whether a status answers a health check well: `200`, `[200, 204]`, `2xx`. */
export function statusMatcher(patterns: readonly (number | string)[]): (status: number) => boolean {
  const exact = new Set<number>();
  const classes = new Set<number>();
  for (const p of patterns) {
    if (typeof p === 'number') exact.add(p);
    else classes.add(Number(p[0]));
  }
  return (status) => exact.has(status) || classes.has(Math.floor(status / 100));
}

/** The active-check state of one upstream: consecutive results in the current direction. */
interface CheckState {
  readonly upstream: UpstreamNode;
  /** Discovery took the upstream away: its chain of checks ends. */
  removed?: boolean;
  passes: number;
  failures: number;
  lastStatus?: number;
  timer?: NodeJS.Timeout;
}

/**
 * Active health checks: every `interval`, GET `path` on each upstream. An upstream turns
 * unhealthy after `unhealthyThreshold` consecutive failures and healthy again after
 * `healthyThreshold` consecutive passes. Upstreams start healthy (a gateway that boots while its
 * checks are pending must still serve) and the first check runs at once.
 *
 * Checks go through their own one-connection-per-origin Agent, not the traffic pool: a pool
 * saturated by traffic must not make its origin look dead.
 */
export class HealthChecker {
  private readonly states = new Map<UpstreamNode, CheckState>();
  private readonly agent: Agent;
  /** One-connection agents for https origins with their service's TLS settings. */
  private readonly tlsAgents = new Map<string, Dispatcher>();
  private readonly accepts: (status: number) => boolean;
  private readonly stopped = new AbortController();

  constructor(
    upstreams: readonly UpstreamNode[],
    private readonly def: HealthCheckDef,
    private readonly deps: {
      logger: Logger;
      onChange?: (upstream: UpstreamNode) => void;
      /** TLS options for an https origin (the service's `tls:`), undefined for the defaults. */
      tls?: (origin: URL, servername?: string) => (ConnectionOptions & { servername?: string }) | undefined;
    },
  ) {
    this.accepts = statusMatcher(def.expectStatus);
    this.agent = new Agent({
      connections: 1,
      headersTimeout: def.timeout,
      bodyTimeout: def.timeout,
      connectTimeout: def.timeout,
    });
    for (const upstream of upstreams) this.add(upstream);
  }

  private add(upstream: UpstreamNode): CheckState {
    const state: CheckState = { upstream, passes: 0, failures: 0 };
    this.states.set(upstream, state);
    const connect = this.deps.tls?.(upstream.origin, upstream.servername);
    if (connect !== undefined && !this.tlsAgents.has(upstream.id)) {
      const { timeout } = this.def;
      this.tlsAgents.set(
        upstream.id,
        new Agent({
          connections: 1,
          headersTimeout: timeout,
          bodyTimeout: timeout,
          connectTimeout: timeout,
          connect,
        }),
      );
    }
    return state;
  }

  /**
   * Checks exactly `upstreams` from now on (discovery changed the set): new ones start healthy
   * and are checked at once, gone ones stop being checked, the others keep their state.
   */
  track(upstreams: readonly UpstreamNode[]): void {
    const wanted = new Set(upstreams);
    for (const [upstream, state] of this.states) {
      if (wanted.has(upstream)) continue;
      state.removed = true;
      clearTimeout(state.timer);
      this.states.delete(upstream);
      const agent = this.tlsAgents.get(upstream.id);
      this.tlsAgents.delete(upstream.id);
      void agent?.close().catch(() => undefined);
    }
    for (const upstream of upstreams) {
      if (!this.states.has(upstream) && !this.stopped.signal.aborted) void this.run(this.add(upstream));
    }
  }

  /** Starts checking every upstream now and then every interval. */
  start(): void {
    for (const state of this.states.values()) void this.run(state);
  }

  /** Stops the timers and aborts checks in flight. */
  async close(): Promise<void> {
    this.stopped.abort();
    for (const state of this.states.values()) clearTimeout(state.timer);
    await Promise.all([this.agent.destroy(), ...[...this.tlsAgents.values()].map((a) => a.destroy())]);
  }

  private async run(state: CheckState): Promise<void> {
    if (this.stopped.signal.aborted || state.removed) return;
    const detail = await this.probe(state);
    if (this.stopped.signal.aborted || state.removed) return;
    const passed = detail === undefined;
    state.upstream.lastHealthCheck = {
      at: new Date().toISOString(),
      passed,
      detail: detail ?? `status ${state.lastStatus}`,
    };
    this.apply(state, passed);
    // A chain of timeouts, not an interval: a slow check can never overlap the next one.
    state.timer = setTimeout(() => void this.run(state), this.def.interval);
    state.timer.unref();
  }

  /** Checks one upstream; undefined when it passed, else why it failed. */
  private async probe(state: CheckState): Promise<string | undefined> {
    try {
      const res = await (this.tlsAgents.get(state.upstream.id) ?? this.agent).request({
        origin: state.upstream.origin,
        path: this.def.path,
        method: 'GET',
        headers: { 'user-agent': 'trellis-health-check' },
        signal: AbortSignal.any([this.stopped.signal, AbortSignal.timeout(this.def.timeout)]),
      });
      await res.body.dump();
      state.lastStatus = res.statusCode;
      return this.accepts(res.statusCode) ? undefined : `status ${res.statusCode}`;
    } catch (err) {
      const e = err as { name?: string; code?: string; message?: string };
      if (
        e.name === 'TimeoutError' ||
        e.code === 'UND_ERR_HEADERS_TIMEOUT' ||
        e.code === 'UND_ERR_CONNECT_TIMEOUT'
      ) {
        return 'timeout';
      }
      return e.code ?? e.message ?? String(err);
    }
  }

  private apply(state: CheckState, passed: boolean): void {
    const { upstream } = state;
    if (passed) {
      state.failures = 0;
      state.passes++;
      if (!upstream.healthy && state.passes >= this.def.healthyThreshold) this.turn(upstream, true);
    } else {
      state.passes = 0;
      state.failures++;
      if (upstream.healthy && state.failures >= this.def.unhealthyThreshold) this.turn(upstream, false);
    }
  }

  private turn(upstream: UpstreamNode, healthy: boolean): void {
    upstream.healthy = healthy;
    this.deps.onChange?.(upstream);
    const log = { upstream: upstream.id, path: this.def.path };
    if (healthy) this.deps.logger.info(log, 'upstream passes its health checks again');
    else this.deps.logger.warn(log, 'upstream failed its health checks: taken out of rotation');
  }
}
