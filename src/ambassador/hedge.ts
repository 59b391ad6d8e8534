import { z } from 'zod';
import { duration } from '../core/units.js';
import type { HedgeOptions } from '../http/forward.js';
import { IDEMPOTENT } from '../http/upstream/index.js';
import type { AmbassadorMetrics } from './metrics.js';

/**
 * `hedge:` of a remote: when an attempt has no response head after `after` (a fixed duration,
 * or `p95`: the remote's observed 95th percentile, kept between `min` and `max`), a second
 * attempt goes to another upstream; the first head wins and the other attempt is aborted.
 */
export const hedgeSchema = z.strictObject({
  /** `p95` (the remote's observed head latency) or a fixed duration like `50ms`. */
  after: z.union([z.literal('p95'), duration()], { error: 'after is p95 or a duration like 50ms' }),
  /** With `after: p95`: the shortest delay (a p95 of 1 ms would hedge everything). */
  min: duration().default(5),
  /** With `after: p95`: the longest delay, and the one used until enough calls were seen. */
  max: duration().default(1_000),
  /** Hedges per call at most. */
  maxHedges: z.number().int().min(1).max(3).default(1),
  /** The methods hedged, upper case; idempotent ones unless `retryNonIdempotent` is on. */
  methods: z
    .array(z.string().regex(/^[A-Z]+$/, 'write methods in upper case, like GET'))
    .min(1)
    .default(['GET', 'HEAD']),
  /** Hedge calls with a body too (the buffered body is sent again): only when the remote de-duplicates. */
  withBody: z.boolean().default(false),
});

export type HedgeConfig = z.output<typeof hedgeSchema>;

/** The methods of `hedge.methods` that are not idempotent (refused unless the remote opts in). */
export function unsafeHedgeMethods(hedge: HedgeConfig): string[] {
  return hedge.methods.filter((m) => !IDEMPOTENT.has(m));
}

/** Samples kept for the p95, and how often it is recomputed (every this many samples). */
const WINDOW = 512;
const RECOMPUTE_EVERY = 64;
/** Below this many samples the p95 says little: the ceiling (`max`) is used. */
const MIN_SAMPLES = 20;

/**
 * The last `WINDOW` head latencies of a remote's answered attempts, and their p95, recomputed
 * every `RECOMPUTE_EVERY` samples so a call pays one array write, never a sort.
 */
export class LatencyWindow {
  private readonly samples = new Float64Array(WINDOW);
  private count = 0;
  private next = 0;
  private p95 = Number.NaN;

  record(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % WINDOW;
    if (this.count < WINDOW) this.count++;
    if (this.next % RECOMPUTE_EVERY === 0 || this.count === MIN_SAMPLES) this.recompute();
  }

  /** The p95 of the window, or NaN while fewer than `MIN_SAMPLES` were recorded. */
  percentile95(): number {
    return this.count < MIN_SAMPLES ? Number.NaN : this.p95;
  }

  private recompute(): void {
    const sorted = this.samples.slice(0, this.count).sort();
    this.p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))]!;
  }
}

/** The exchange's hedge options for a remote, and where its latencies are recorded. */
export function hedgeOptions(
  hedge: HedgeConfig,
  metrics: AmbassadorMetrics,
): { options: HedgeOptions; window: LatencyWindow | undefined } {
  const fixed = hedge.after === 'p95' ? undefined : hedge.after;
  const window = fixed === undefined ? new LatencyWindow() : undefined;
  const delayMs =
    fixed !== undefined
      ? () => fixed
      : () => {
          const p95 = window!.percentile95();
          return Number.isNaN(p95) ? hedge.max : Math.min(hedge.max, Math.max(hedge.min, p95));
        };
  return {
    window,
    options: {
      delayMs,
      maxHedges: hedge.maxHedges,
      methods: new Set(hedge.methods),
      withBody: hedge.withBody,
      counted: (event) => metrics.hedge(event),
    },
  };
}
