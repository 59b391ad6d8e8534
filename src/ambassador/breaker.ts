import { CircuitState, ConsecutiveBreaker, type IBreaker, SamplingBreaker } from 'cockatiel';
import type { AttemptOutcome } from '../http/upstream/types.js';
import type { BreakerConfig } from './schema.js';

/**
 * Circuit breakers per upstream: closed (attempts pass), open (refused at once for
 * `halfOpenAfter`), half-open (one probe; success closes, failure opens again).
 *
 * The breaking conditions are cockatiel's (`ConsecutiveBreaker`, `SamplingBreaker`, combined by
 * `EitherBreaker`); the three-state machine around them is this file's, not cockatiel's
 * `CircuitBreakerPolicy`, because that one only judges a function it runs (`execute(fn)`: a
 * promise per attempt, and the answer is judged when the promise settles). The streaming
 * exchange admits an attempt and reports its end through synchronous hooks (src/http/exchange/
 * hooks.ts), which is what keeps the ambassador as fast as the gateway.
 */

/** The state names used in metrics and the admin API. */
export type BreakerStateName = 'closed' | 'open' | 'half-open';

/** Admission tickets: a normal attempt, the half-open probe, refused. */
export const ADMITTED = 0;
export const PROBE = 1;
export const REFUSED = -1;

/** Opens when any of its breakers says so; every breaker sees every result. */
class EitherBreaker implements IBreaker {
  constructor(private readonly breakers: IBreaker[]) {}

  get state(): unknown {
    return this.breakers.map((b) => b.state);
  }

  set state(value: unknown) {
    (value as unknown[]).forEach((v, i) => {
      this.breakers[i]!.state = v;
    });
  }

  success(state: CircuitState): void {
    for (const b of this.breakers) b.success(state);
  }

  failure(state: CircuitState): boolean {
    let open = false;
    for (const b of this.breakers) open = b.failure(state) || open;
    return open;
  }
}

/** One upstream's breaker. */
export class Breaker {
  private state: CircuitState = CircuitState.Closed;
  private openedAt = 0;
  /** In half-open: the probe is out (everyone else goes elsewhere until it ends). */
  private probing = false;

  constructor(
    private readonly condition: IBreaker | undefined,
    private readonly halfOpenAfter: number,
    private readonly onChange: (state: BreakerStateName) => void,
    private readonly now: () => number = Date.now,
  ) {}

  get stateName(): BreakerStateName {
    return this.state === CircuitState.Open
      ? 'open'
      : this.state === CircuitState.HalfOpen
        ? 'half-open'
        : 'closed';
  }

  /** Admits an attempt: ADMITTED, PROBE (the first due after `halfOpenAfter`) or REFUSED. */
  admit(): number {
    switch (this.state) {
      case CircuitState.Closed:
        return ADMITTED;
      case CircuitState.Open:
        if (this.now() - this.openedAt < this.halfOpenAfter) return REFUSED;
        this.enter(CircuitState.HalfOpen);
        this.probing = true;
        return PROBE;
      default:
        if (this.probing) return REFUSED;
        this.probing = true;
        return PROBE;
    }
  }

  /**
   * How an admitted attempt ended. A cancellation (the caller gave up) says nothing about the
   * upstream; a cancelled probe lets the next attempt probe instead. Results of attempts
   * admitted before the breaker opened are ignored: they predate what opened it.
   */
  record(outcome: AttemptOutcome, ticket: number): void {
    if (ticket === PROBE) {
      this.probing = false;
      if (outcome === 'cancelled' || this.state !== CircuitState.HalfOpen) return;
      if (outcome === 'success') {
        this.condition?.success(CircuitState.HalfOpen);
        this.enter(CircuitState.Closed);
      } else {
        this.condition?.failure(CircuitState.HalfOpen);
        this.open();
      }
      return;
    }
    if (outcome === 'cancelled' || this.state !== CircuitState.Closed || this.condition === undefined) return;
    if (outcome === 'success') this.condition.success(CircuitState.Closed);
    else if (this.condition.failure(CircuitState.Closed)) this.open();
  }

  private open(): void {
    this.openedAt = this.now();
    this.enter(CircuitState.Open);
  }

  private enter(state: CircuitState): void {
    this.state = state;
    this.onChange(this.stateName);
  }
}

/** The breakers of one remote's upstreams, made on first use. */
export class UpstreamBreakers {
  private readonly byUpstream = new Map<string, Breaker>();

  constructor(
    private readonly config: BreakerConfig,
    private readonly onChange: (upstream: string, state: BreakerStateName) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** The breaker of `upstream`. */
  of(upstream: string): Breaker {
    let breaker = this.byUpstream.get(upstream);
    if (breaker !== undefined) return breaker;
    const c = this.config;
    const conditions: IBreaker[] = [];
    if (c.consecutiveFailures > 0) conditions.push(new ConsecutiveBreaker(c.consecutiveFailures));
    if (c.failureRatio > 0) {
      conditions.push(
        new SamplingBreaker({
          threshold: c.failureRatio,
          duration: c.window,
          // Cockatiel judges the ratio once the window averages this rate.
          minimumRps: c.minimumAttempts / (c.window / 1000),
        }),
      );
    }
    breaker = new Breaker(
      conditions.length === 0 ? undefined : new EitherBreaker(conditions),
      c.halfOpenAfter,
      (state) => this.onChange(upstream, state),
      this.now,
    );
    this.byUpstream.set(upstream, breaker);
    return breaker;
  }

  /**
   * Forgets the breakers of upstreams discovery took away (a long-lived remote's set may churn);
   * returns the upstreams whose breaker was dropped, so their metric series can go too.
   */
  retain(upstreams: Iterable<string>): string[] {
    const keep = new Set(upstreams);
    const dropped: string[] = [];
    for (const id of this.byUpstream.keys()) {
      if (keep.has(id)) continue;
      this.byUpstream.delete(id);
      dropped.push(id);
    }
    return dropped;
  }

  /** State per upstream, for the admin API. */
  status(): Record<string, BreakerStateName> {
    const out: Record<string, BreakerStateName> = {};
    for (const [id, b] of this.byUpstream) out[id] = b.stateName;
    return out;
  }
}
