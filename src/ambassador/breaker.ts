import {
  CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  type IBreaker,
  SamplingBreaker,
} from 'cockatiel';
import type { BreakerConfig } from './schema.js';

/**
 * Circuit breakers per upstream, cockatiel's: closed (attempts pass), open (refused at once for
 * `halfOpenAfter`), half-open (one probe; success closes, failure opens again). Cockatiel has
 * one breaking condition per policy; `EitherBreaker` combines the two the ambassador offers
 * (consecutive failures and a failure ratio over a time window) so one policy holds the state.
 */

/** The state names used in metrics and the admin API. */
export type BreakerStateName = 'closed' | 'open' | 'half-open' | 'isolated';

const STATE_NAME: Record<CircuitState, BreakerStateName> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

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

/** Marks an error that must not count against the upstream (the caller gave up). */
export class Cancelled extends Error {
  readonly cancelled = true;
}

/** The breakers of one remote's upstreams, made on first use. */
export class UpstreamBreakers {
  private readonly byUpstream = new Map<string, CircuitBreakerPolicy>();
  /** When each breaker last opened (cockatiel keeps its own privately). */
  private readonly openedAt = new Map<string, number>();

  constructor(
    private readonly config: BreakerConfig,
    private readonly onChange: (upstream: string, state: BreakerStateName) => void,
  ) {}

  /** The breaker of `upstream`. */
  of(upstream: string): CircuitBreakerPolicy {
    let policy = this.byUpstream.get(upstream);
    if (policy !== undefined) return policy;
    const c = this.config;
    const breakers: IBreaker[] = [];
    if (c.consecutiveFailures > 0) breakers.push(new ConsecutiveBreaker(c.consecutiveFailures));
    if (c.failureRatio > 0) {
      breakers.push(
        new SamplingBreaker({
          threshold: c.failureRatio,
          duration: c.window,
          // Cockatiel judges the ratio once the window averages this rate.
          minimumRps: c.minimumAttempts / (c.window / 1000),
        }),
      );
    }
    policy = circuitBreaker(
      handleWhen((err) => !(err instanceof Cancelled)),
      {
        halfOpenAfter: c.halfOpenAfter,
        breaker: new EitherBreaker(breakers),
      },
    );
    policy.onStateChange((state) => {
      if (state === CircuitState.Open) this.openedAt.set(upstream, Date.now());
      this.onChange(upstream, STATE_NAME[state]);
    });
    this.byUpstream.set(upstream, policy);
    return policy;
  }

  /** Whether `upstream` takes no attempt now: open (not yet due a probe) or probing already. */
  refuses(upstream: string): boolean {
    const policy = this.byUpstream.get(upstream);
    if (policy === undefined) return false;
    switch (policy.state) {
      case CircuitState.Closed:
        return false;
      case CircuitState.Open:
        // Due a probe: the first caller goes through as it (cockatiel moves to half-open).
        return Date.now() - (this.openedAt.get(upstream) ?? 0) < this.config.halfOpenAfter;
      default:
        // Half-open would make everyone else wait for the probe: they go elsewhere instead.
        return true;
    }
  }

  /** State per upstream, for the admin API. */
  status(): Record<string, BreakerStateName> {
    const out: Record<string, BreakerStateName> = {};
    for (const [id, p] of this.byUpstream) out[id] = STATE_NAME[p.state];
    return out;
  }
}

export { BrokenCircuitError } from 'cockatiel';
export { CircuitBreakerPolicy };
