/**
 * Guard rails: the modern side's outcomes over a sliding window (errors and latency), and the
 * decision to step a migration back (canary -> shadow, modern -> canary) when the modern side's
 * error rate or p99 passes the thresholds written in the file, or to allow a step forward only
 * after a minimum sample.
 */

export interface GuardThresholds {
  /** Largest error rate (0..1) of the modern side before stepping back. */
  maxErrorRate: number;
  /** Largest p99 latency in ms of the modern side before stepping back. */
  maxP99Ms: number;
  /** Fewest modern answers in the window before any verdict (and before a step forward). */
  minSamples: number;
}

/** Latency buckets (ms) for the window's p99: fine below 100 ms, coarse above. */
const BOUNDS = [
  1,
  2,
  3,
  5,
  8,
  12,
  20,
  30,
  50,
  75,
  100,
  150,
  250,
  400,
  600,
  1000,
  1500,
  2500,
  5000,
  10_000,
  Infinity,
];

interface Slot {
  at: number;
  total: number;
  errors: number;
  latency: number[];
}

/** Counts over the last `windowMs`, kept in one slot per second (memory stays constant). */
export class OutcomeWindow {
  readonly #slots: Slot[] = [];

  constructor(
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  #slot(): Slot {
    const second = Math.floor(this.now() / 1000);
    let last = this.#slots.at(-1);
    if (last?.at !== second) {
      last = { at: second, total: 0, errors: 0, latency: BOUNDS.map(() => 0) };
      this.#slots.push(last);
      this.#trim();
    }
    return last;
  }

  #trim(): void {
    const oldest = Math.floor((this.now() - this.windowMs) / 1000);
    while (this.#slots.length > 0 && this.#slots[0]!.at <= oldest) this.#slots.shift();
  }

  /** One answer of the side this window watches: an error (5xx, timeout, reset) or not, and its latency. */
  record(error: boolean, ms: number): void {
    const s = this.#slot();
    s.total++;
    if (error) s.errors++;
    let i = 0;
    while (ms > BOUNDS[i]!) i++;
    s.latency[i]!++;
  }

  /** The window's counts: samples, error rate, p99 (the upper bound of its bucket). */
  stats(): { samples: number; errorRate: number; p99Ms: number } {
    this.#trim();
    let total = 0;
    let errors = 0;
    const latency = BOUNDS.map(() => 0);
    for (const s of this.#slots) {
      total += s.total;
      errors += s.errors;
      for (let i = 0; i < latency.length; i++) latency[i]! += s.latency[i]!;
    }
    let p99 = 0;
    const rank = Math.ceil(total * 0.99);
    let seen = 0;
    for (let i = 0; i < latency.length && total > 0; i++) {
      seen += latency[i]!;
      if (seen >= rank) {
        p99 = BOUNDS[i]!;
        break;
      }
    }
    return { samples: total, errorRate: total === 0 ? 0 : errors / total, p99Ms: p99 };
  }
}

export type GuardVerdict =
  | { action: 'hold'; why: string }
  | { action: 'ok' }
  | { action: 'stepBack'; why: string };

/** What the guard says about the modern side now. */
export function judge(stats: ReturnType<OutcomeWindow['stats']>, t: GuardThresholds): GuardVerdict {
  if (stats.samples < t.minSamples)
    return { action: 'hold', why: `${stats.samples} of ${t.minSamples} samples` };
  if (stats.errorRate > t.maxErrorRate) {
    return {
      action: 'stepBack',
      why: `modern error rate ${(stats.errorRate * 100).toFixed(1)} % > ${(t.maxErrorRate * 100).toFixed(1)} %`,
    };
  }
  if (stats.p99Ms > t.maxP99Ms)
    return { action: 'stepBack', why: `modern p99 ${stats.p99Ms} ms > ${t.maxP99Ms} ms` };
  return { action: 'ok' };
}

/** The mode a step back leads to. */
export function stepBackFrom(mode: string): 'shadow' | 'canary' | undefined {
  if (mode === 'canary') return 'shadow';
  if (mode === 'modern') return 'canary';
  return undefined;
}
