import { Counter, type Registry } from '../core/metrics.js';

/**
 * The strangler's metrics, shared by every strangled route of a registry (a reload or a second
 * route reuses them). Label children are bound per route at load: the hot path does no lookups.
 */
export interface StranglerMetrics {
  /** A request answered, by the side that answered and the mode it was in. */
  answered(side: 'legacy' | 'modern' | 'none', mode: string): void;
  /** A shadow copy sent (`side` is the side copied to). */
  shadowSent(side: 'legacy' | 'modern'): void;
  /** A shadow copy not sent: `full` (queue), `body` (too large), `unsafe` (method), `sample` (not in shadow.sample). */
  shadowSkipped(reason: 'full' | 'body' | 'unsafe' | 'sample'): void;
  /** A comparison's outcome (`dropped`: too many comparisons waiting, not run). */
  compared(outcome: 'match' | 'mismatch' | 'failed' | 'dropped'): void;
  /** An automatic step back written by the guard. */
  stepBack(from: string, to: string): void;
}

function shared<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function stranglerMetrics(registry: Registry, route: string): StranglerMetrics {
  const requests = shared(
    registry,
    'trellis_strangler_requests_total',
    () =>
      new Counter({
        name: 'trellis_strangler_requests_total',
        help: 'Strangled requests by the side that answered and the mode',
        labelNames: ['route', 'side', 'mode'],
        registers: [registry],
      }),
  );
  const shadow = shared(
    registry,
    'trellis_strangler_shadow_total',
    () =>
      new Counter({
        name: 'trellis_strangler_shadow_total',
        help: 'Shadow copies by outcome: sent (to side), dropped (queue full), skipped (body too large, unsafe method, not sampled)',
        labelNames: ['route', 'outcome', 'side'],
        registers: [registry],
      }),
  );
  const comparisons = shared(
    registry,
    'trellis_strangler_comparisons_total',
    () =>
      new Counter({
        name: 'trellis_strangler_comparisons_total',
        help: 'Answer comparisons by outcome (match, mismatch, failed: the copy had no comparable answer, dropped: too many waiting)',
        labelNames: ['route', 'outcome'],
        registers: [registry],
      }),
  );
  const steps = shared(
    registry,
    'trellis_strangler_step_backs_total',
    () =>
      new Counter({
        name: 'trellis_strangler_step_backs_total',
        help: 'Automatic step backs written by the guard rails',
        labelNames: ['route', 'from', 'to'],
        registers: [registry],
      }),
  );
  const answeredBy = new Map<string, { inc(): void }>();
  const sent = {
    legacy: shadow.labels(route, 'sent', 'legacy'),
    modern: shadow.labels(route, 'sent', 'modern'),
  };
  const skipped = {
    full: shadow.labels(route, 'dropped', ''),
    body: shadow.labels(route, 'skipped_body', ''),
    unsafe: shadow.labels(route, 'skipped_unsafe', ''),
    sample: shadow.labels(route, 'skipped_sample', ''),
  };
  const outcome = {
    match: comparisons.labels(route, 'match'),
    mismatch: comparisons.labels(route, 'mismatch'),
    failed: comparisons.labels(route, 'failed'),
    dropped: comparisons.labels(route, 'dropped'),
  };
  return {
    answered(side, mode) {
      const k = `${side}/${mode}`;
      let c = answeredBy.get(k);
      if (c === undefined) {
        c = requests.labels(route, side, mode);
        answeredBy.set(k, c);
      }
      c.inc();
    },
    shadowSent: (side) => sent[side].inc(),
    shadowSkipped: (reason) => skipped[reason].inc(),
    compared: (o) => outcome[o].inc(),
    stepBack: (from, to) => steps.labels(route, from, to).inc(),
  };
}
