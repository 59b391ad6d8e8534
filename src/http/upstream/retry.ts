import type { RetryDef, RetryOn } from './schema.js';
import type { AttemptOutcome, RetryDecisionInput, RetryPolicy, RetryRefusal } from './types.js';

export type { RetryRefusal };

import type { Clock } from './upstream.js';

/** Methods RFC 9110 defines as idempotent: sending one twice has the effect of sending it once. */
export const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

const OUTCOME_TO_CONDITION: Partial<Record<AttemptOutcome, RetryOn>> = {
  connectFailure: 'connect-failure',
  reset: 'reset',
  timeout: 'timeout',
};

/** The sliding window of the retry budget: ten one-second buckets. */
const WINDOW_SECONDS = 10;

/**
 * Counts attempts and retries over the last ten seconds. Retries may not exceed `ratio` of the
 * first attempts in the window (Finagle's and Envoy's budget: when an origin is down, retries
 * must not multiply its load), except that `minPerSecond` retries in the current second are
 * always allowed so a quiet service still retries at all.
 */
export class RetryBudget {
  private readonly attempts = new Float64Array(WINDOW_SECONDS);
  private readonly retries = new Float64Array(WINDOW_SECONDS);
  private second = 0;

  constructor(
    private readonly ratio: number,
    private readonly minPerSecond: number,
    private readonly clock: Clock,
  ) {}

  /** Records an attempt (first or retry) being sent. */
  recordAttempt(): void {
    this.attempts[this.advance()]!++;
  }

  /** Takes one retry from the budget; false when the budget is spent. */
  tryRetry(): boolean {
    const slot = this.advance();
    let attempts = 0;
    let retries = 0;
    for (let i = 0; i < WINDOW_SECONDS; i++) {
      attempts += this.attempts[i]!;
      retries += this.retries[i]!;
    }
    const firstAttempts = attempts - retries;
    if (this.retries[slot]! >= this.minPerSecond && retries + 1 > this.ratio * firstAttempts) return false;
    this.retries[slot]!++;
    return true;
  }

  /** Moves the window to now, clearing the buckets of the seconds that passed; returns now's slot. */
  private advance(): number {
    const second = Math.floor(this.clock() / 1000);
    const passed = second - this.second;
    if (passed > 0) {
      for (let s = 1; s <= Math.min(passed, WINDOW_SECONDS); s++) {
        const slot = (this.second + s) % WINDOW_SECONDS;
        this.attempts[slot] = 0;
        this.retries[slot] = 0;
      }
      this.second = second;
    }
    return this.second % WINDOW_SECONDS;
  }
}

/**
 * The retry policy of one service. A small policy of its own rather than cockatiel's
 * `retry()`: the proxy decides per attempt with facts cockatiel's wrapper never sees (whether a
 * body byte left, which upstream to try next), and the budget is shared across requests. Backoff
 * is "full jitter" (AWS architecture blog): uniform in [0, min(max, base * 2^(attempt-1))).
 */
export class ServiceRetryPolicy implements RetryPolicy {
  readonly attempts: number;
  readonly budget: RetryBudget;
  private readonly on: ReadonlySet<string>;

  constructor(
    private readonly def: RetryDef,
    clock: Clock = Date.now,
    private readonly random: () => number = Math.random,
    private readonly onDecision?: (retried: boolean, reason: RetryRefusal | undefined) => void,
  ) {
    this.attempts = def.attempts;
    this.on = new Set(def.on);
    this.budget = new RetryBudget(def.budget.ratio, def.budget.minPerSecond, clock);
  }

  shouldRetry(input: RetryDecisionInput): boolean {
    return this.decide(input) === undefined;
  }

  decide(input: RetryDecisionInput): RetryRefusal | undefined {
    const refusal = this.refusal(input);
    if (refusal === undefined) this.onDecision?.(true, undefined);
    // Only refusals a retry was otherwise due for are worth counting.
    else if (refusal === 'budget') this.onDecision?.(false, refusal);
    return refusal;
  }

  /** Why `input` may not be retried, or undefined when it may (and the budget was charged). */
  refusal(input: RetryDecisionInput): RetryRefusal | undefined {
    if (input.attempt >= this.attempts) return 'attempts';
    if (input.bodySent) return 'body-sent';
    if (!input.retryNonIdempotent && !IDEMPOTENT.has(input.method.toUpperCase())) return 'not-idempotent';
    if (!this.on.has(conditionOf(input))) return 'condition';
    if (!this.budget.tryRetry()) return 'budget';
    return undefined;
  }

  /** A hedge is an extra attempt like a retry: the same budget keeps it from amplifying load. */
  chargeHedge(): boolean {
    return this.budget.tryRetry();
  }

  backoffMs(attempt: number): number {
    const { base, max } = this.def.backoff;
    const ceiling = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
    return Math.floor(this.random() * ceiling);
  }
}

function conditionOf(input: RetryDecisionInput): string {
  if (input.outcome === 'http5xx') return String(input.status ?? 500);
  return OUTCOME_TO_CONDITION[input.outcome] ?? 'none';
}
