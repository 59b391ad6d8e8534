import type { GuardVerdict } from './guard.js';
import type { LiveMode } from './live.js';
import type { MismatchReport } from './mismatches.js';
import type { HistoryEntry, RouteState } from './state.js';
import type { StepRequest } from './step.js';

/**
 * The strangled routes of this process, by name, as the admin API and `trellis strangler
 * status` see them. A reload's new handler replaces its route's entry; closing removes only
 * the entry it put there.
 */
export interface StranglerRouteView {
  route: string;
  legacy: string;
  modern: string;
  live(): LiveMode;
  /** Requests answered since start, by side. */
  split(): { legacy: number; modern: number; retired: number };
  /** Answers that were errors (5xx or no answer), by side, since start. */
  errors(): { legacy: number; modern: number };
  shadow(): { sent: number; dropped: number; skipped: number; running: number; waiting: number };
  guard(): { samples: number; errorRate: number; p99Ms: number; verdict: GuardVerdict } | undefined;
  report(top?: number): MismatchReport & { noise: { samples: number; paths: Record<string, number> } };
  /** Writes the route's next mode to the shared migration state (guard rails checked). */
  step(request: StepRequest): Promise<{ before: RouteState | undefined; written: HistoryEntry }>;
}

export const stranglerRoutes = new Map<string, StranglerRouteView>();

/** Every strangled route's summary (what `status` prints). */
export function stranglerStatus(): unknown[] {
  return [...stranglerRoutes.values()].map((v) => {
    const r = v.report(0);
    return {
      route: v.route,
      legacy: v.legacy,
      modern: v.modern,
      ...v.live(),
      split: v.split(),
      errors: v.errors(),
      shadow: v.shadow(),
      compared: r.compared,
      mismatched: r.mismatched,
      mismatchRate: r.rate,
      copyFailures: r.failed,
      guard: v.guard(),
    };
  });
}
