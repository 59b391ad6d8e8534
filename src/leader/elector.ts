import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { isTrellisError, messageOf, TrellisError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { Counter, Gauge, type Registry } from '../core/metrics.js';
import type { Lease, LeaseStore } from '../stores/types.js';
import { defaultIdentity, type ElectionTiming, electionTiming } from './options.js';
import { jitterBelow, sleep, withTimeout } from './timers.js';

/** What `onStartedLeading` receives for one term of leadership. */
export interface LeadershipContext {
  /** Aborts the moment leadership is lost or in doubt (no successful renew within renewDeadline). */
  signal: AbortSignal;
  /** The fencing token of this term: pass it to every guarded resource. */
  token: number;
  identity: string;
  group: string;
}

/** Why a term ended. */
export type TermEndReason = 'released' | 'resigned' | 'lost' | 'renew-deadline' | 'work-failed';

export interface StoppedLeadingInfo {
  token: number;
  reason: TermEndReason;
}

export interface LeaderElectorOptions extends Partial<ElectionTiming> {
  store: LeaseStore;
  /** The election's name: every candidate of one job uses the same group. */
  group: string;
  /** This candidate's name, unique among candidates (default `host-pid-random`). */
  identity?: string;
  /** Runs when this candidate becomes leader; must return once `ctx.signal` aborts. */
  onStartedLeading?: (ctx: LeadershipContext) => unknown;
  /** Runs after a term ended and its `onStartedLeading` work returned. */
  onStoppedLeading?: (info: StoppedLeadingInfo) => void;
  /** Runs whenever a different leader (or this one) is observed. */
  onNewLeader?: (identity: string, token: number) => void;
  logger?: Logger;
  /** Prometheus registry for `trellis_leader_is_leader` and `trellis_leader_terms_total`. */
  registry?: Registry;
}

/** The election's metrics, shared by every elector registered in one registry. */
function electionMetrics(registry: Registry) {
  const isLeader =
    (registry.getSingleMetric('trellis_leader_is_leader') as Gauge | undefined) ??
    new Gauge({
      name: 'trellis_leader_is_leader',
      help: '1 while this candidate leads the group',
      labelNames: ['group', 'identity'],
      registers: [registry],
    });
  const terms =
    (registry.getSingleMetric('trellis_leader_terms_total') as Counter | undefined) ??
    new Counter({
      name: 'trellis_leader_terms_total',
      help: 'Terms of leadership ended, by reason',
      labelNames: ['group', 'reason'],
      registers: [registry],
    });
  return { isLeader, terms };
}

/**
 * Lease-based leader election with Kubernetes client-go semantics (leaseDuration, renewDeadline,
 * retryPeriod) plus fencing tokens: every term carries a token larger than any before it, so a
 * resource that remembers the largest token it has seen can refuse a deposed leader that has not
 * noticed yet (a paused process, a slow clock).
 */
export class LeaderElector {
  readonly identity: string;
  readonly group: string;
  readonly timing: ElectionTiming;
  readonly #options: LeaderElectorOptions;
  readonly #log: Logger;
  readonly #stopping = new AbortController();
  #loop: Promise<void> | undefined;
  #lease: Lease | undefined;
  #endTerm: ((reason: TermEndReason) => void) | undefined;
  #observed: { holder: string; token: number } | undefined;
  readonly #metrics: ReturnType<typeof electionMetrics> | undefined;

  constructor(options: LeaderElectorOptions) {
    if (!options.group) {
      throw new TrellisError('TRELLIS_E_LEADER_OPTIONS_INVALID', 'group is required: name the election');
    }
    this.#options = options;
    this.timing = electionTiming(options);
    this.identity = options.identity ?? defaultIdentity();
    this.group = options.group;
    this.#log = (options.logger ?? silentLogger()).child({ group: this.group, identity: this.identity });
    this.#metrics = options.registry ? electionMetrics(options.registry) : undefined;
  }

  /** True while this candidate holds the lease and has renewed it within renewDeadline. */
  get isLeader(): boolean {
    return this.#lease !== undefined;
  }

  /** The fencing token of the current term, or undefined when not leading. */
  get token(): number | undefined {
    return this.#lease?.token;
  }

  /** The last leader this candidate observed (itself included). */
  get leader(): { identity: string; token: number } | undefined {
    return this.#observed && { identity: this.#observed.holder, token: this.#observed.token };
  }

  /** Starts campaigning in the background (idempotent). */
  start(): void {
    if (this.#loop || this.#stopping.signal.aborted) return;
    this.#loop = this.#campaignLoop().catch((err: unknown) => {
      this.#log.error({ err }, 'leader election stopped unexpectedly');
    });
  }

  /** Campaigns until `signal` aborts or stop() is called; resolves once fully stopped. */
  async run(signal?: AbortSignal): Promise<void> {
    signal?.addEventListener('abort', () => void this.stop(), { once: true });
    if (signal?.aborted) return this.stop();
    this.start();
    await this.#loop;
  }

  /** Ends the current term (waiting for its work), releases the lease and campaigns again. */
  resign(): void {
    this.#endTerm?.('resigned');
  }

  /** Stops leading and campaigning: ends the work, releases the lease so a successor takes over at once. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    await this.#loop;
  }

  async #campaignLoop(): Promise<void> {
    const stop = this.#stopping.signal;
    while (!stop.aborted) {
      const won = await this.#campaign();
      if (!won) break;
      const reason = await this.#lead(won.lease, won.at);
      // After giving the lease up voluntarily, let another candidate take it first.
      if (!stop.aborted && reason !== 'lost' && reason !== 'renew-deadline') {
        await sleep(this.timing.retryPeriod, stop);
      }
    }
  }

  /** Tries to acquire every retryPeriod until it succeeds (returns the lease) or stop() (undefined). */
  async #campaign(): Promise<{ lease: Lease; at: number } | undefined> {
    const stop = this.#stopping.signal;
    const { leaseDuration, retryPeriod } = this.timing;
    while (!stop.aborted) {
      const at = performance.now();
      try {
        // A slow store is not a reason to give up on an acquire that may still succeed (a lease
        // we won but forgot blocks everyone until it lapses); a hung one is, after renewDeadline.
        const lease = await withTimeout(
          this.#options.store.acquire(this.group, this.identity, leaseDuration),
          this.timing.renewDeadline,
          () => new Error(`acquire took longer than ${this.timing.renewDeadline}ms`),
        );
        if (stop.aborted) {
          if (lease) await this.#release(lease);
          return undefined;
        }
        if (lease) return { lease, at };
        const current = await this.#options.store.read(this.group);
        if (current) this.#observe(current.holder, current.token);
      } catch (err) {
        this.#log.warn({ err: messageOf(err) }, 'cannot reach the lease store; retrying');
      }
      await sleep(jitterBelow(retryPeriod), stop);
    }
    return undefined;
  }

  /** One term: runs the work, renews until the lease is lost, in doubt, resigned or released. */
  async #lead(lease: Lease, acquiredAt: number): Promise<TermEndReason> {
    const { leaseDuration, renewDeadline, retryPeriod } = this.timing;
    const term = new AbortController();
    let reason = 'released' as TermEndReason;
    const end = (why: TermEndReason) => {
      if (term.signal.aborted) return;
      reason = why;
      this.#lease = undefined;
      term.abort(
        new TrellisError(
          'TRELLIS_E_LEADERSHIP_LOST',
          `leadership of "${this.group}" ended (${why}): stop acting as leader; token ${lease.token} is no longer valid`,
        ),
      );
    };
    this.#lease = lease;
    this.#endTerm = end;
    const onStop = () => end('released');
    this.#stopping.signal.addEventListener('abort', onStop, { once: true });
    this.#observe(this.identity, lease.token);
    this.#log.info({ token: lease.token }, 'started leading');
    this.#metrics?.isLeader.set({ group: this.group, identity: this.identity }, 1);

    // The lease was valid from the moment we asked for it: measure the deadline from there, on the
    // monotonic clock, so a process frozen by SIGSTOP sees the overdue deadline the moment it wakes.
    let lastRenew = acquiredAt;
    let deadline: NodeJS.Timeout | undefined;
    const armDeadline = () => {
      clearTimeout(deadline);
      deadline = setTimeout(() => end('renew-deadline'), lastRenew + renewDeadline - performance.now());
    };
    armDeadline();

    const work = (async () => {
      await this.#options.onStartedLeading?.({
        signal: term.signal,
        token: lease.token,
        identity: this.identity,
        group: this.group,
      });
    })().catch((err: unknown) => {
      this.#log.error({ err }, 'onStartedLeading failed: giving up leadership');
      end('work-failed');
    });

    while (!term.signal.aborted) {
      await sleep(retryPeriod, term.signal);
      if (term.signal.aborted) break;
      if (performance.now() - lastRenew > renewDeadline) {
        end('renew-deadline');
        break;
      }
      const at = performance.now();
      try {
        const renewed = await withTimeout(
          this.#options.store.renew(lease, leaseDuration),
          lastRenew + renewDeadline - at,
          () => new Error('renew did not answer before the renew deadline'),
        );
        if (term.signal.aborted) break;
        lastRenew = at;
        lease = renewed;
        this.#lease = renewed;
        armDeadline();
      } catch (err) {
        if (isTrellisError(err, 'TRELLIS_E_LEASE_LOST')) {
          end('lost');
          break;
        }
        this.#log.warn({ err: messageOf(err) }, 'renew failed; retrying until the renew deadline');
      }
    }
    clearTimeout(deadline);
    this.#stopping.signal.removeEventListener('abort', onStop);
    this.#endTerm = undefined;
    this.#log.info({ token: lease.token, reason }, 'stopped leading');
    this.#metrics?.isLeader.set({ group: this.group, identity: this.identity }, 0);
    this.#metrics?.terms.inc({ group: this.group, reason });
    await work;
    // Release only after the work has stopped, so a successor never overlaps with it.
    if (reason !== 'lost') await this.#release(lease);
    try {
      this.#options.onStoppedLeading?.({ token: lease.token, reason });
    } catch (err) {
      this.#log.error({ err }, 'onStoppedLeading threw');
    }
    return reason;
  }

  async #release(lease: Lease): Promise<void> {
    try {
      await withTimeout(
        this.#options.store.release(lease),
        this.timing.retryPeriod,
        () => new Error('release timed out'),
      );
    } catch (err) {
      this.#log.warn({ err: messageOf(err) }, 'could not release the lease; it lapses on its own');
    }
  }

  #observe(holder: string, token: number): void {
    if (this.#observed?.holder === holder && this.#observed.token === token) return;
    this.#observed = { holder, token };
    try {
      this.#options.onNewLeader?.(holder, token);
    } catch (err) {
      this.#log.error({ err }, 'onNewLeader threw');
    }
  }
}
