import type { Logger } from 'pino';
import type { OutlierDef } from './schema.js';
import type { AttemptOutcome } from './types.js';
import type { Clock, UpstreamNode } from './upstream.js';

/**
 * Passive outlier detection, after Envoy's: consecutive failed attempts eject an upstream for
 * `baseEjection * 2^(ejections-1)`, capped at `maxEjection`. The ejection simply runs out
 * (re-admission needs no timer); the ejection count decays by one for every `baseEjection` an
 * upstream stays admitted, so an origin that failed once long ago starts again from the base time.
 */
export class OutlierDetector {
  constructor(
    private readonly upstreams: readonly UpstreamNode[],
    private readonly def: OutlierDef,
    private readonly deps: { clock: Clock; logger: Logger; onEject?: (upstream: UpstreamNode) => void },
  ) {}

  /** Feeds the outcome of one attempt against `upstream`. */
  record(upstream: UpstreamNode, outcome: AttemptOutcome): void {
    // A caller's own cancellation (a slow or departed client) must never eject an upstream.
    if (outcome === 'cancelled') return;
    if (outcome === 'success') {
      upstream.consecutive5xx = 0;
      upstream.consecutiveConnectFailures = 0;
      if (!upstream.readmissionNoted && !upstream.ejected) {
        upstream.readmissionNoted = true;
        this.deps.logger.info({ upstream: upstream.id }, 'upstream re-admitted after ejection');
      }
      return;
    }
    // Every failure would become a 5xx for the client; network ones also count on their own.
    upstream.consecutive5xx++;
    if (outcome === 'http5xx') upstream.consecutiveConnectFailures = 0;
    else upstream.consecutiveConnectFailures++;
    // Attempts that were in flight when it was ejected (or sent there because all are out).
    if (upstream.ejected) return;
    const { consecutive5xx, consecutiveConnectFailures } = this.def;
    const tripped =
      (consecutive5xx > 0 && upstream.consecutive5xx >= consecutive5xx) ||
      (consecutiveConnectFailures > 0 && upstream.consecutiveConnectFailures >= consecutiveConnectFailures);
    if (tripped) this.eject(upstream);
  }

  /** How many upstreams may be out at once: the percentage, but never all, and one if it can. */
  maxEjected(): number {
    const n = this.upstreams.length;
    if (n < 2 || this.def.maxEjectedPercent === 0) return 0;
    return Math.min(n - 1, Math.max(1, Math.floor((n * this.def.maxEjectedPercent) / 100)));
  }

  private eject(upstream: UpstreamNode): void {
    const ejectedNow = this.upstreams.reduce((sum, u) => sum + (u.ejected ? 1 : 0), 0);
    if (ejectedNow >= this.maxEjected()) {
      this.deps.logger.warn(
        { upstream: upstream.id, ejected: ejectedNow },
        'upstream is failing but not ejected: the share of ejected upstreams is at its limit',
      );
      return;
    }
    const now = this.deps.clock();
    const { baseEjection, maxEjection } = this.def;
    if (upstream.ejectedUntil !== 0 && baseEjection > 0) {
      const goodPeriods = Math.floor((now - upstream.ejectedUntil) / baseEjection);
      upstream.ejections = Math.max(0, upstream.ejections - goodPeriods);
    }
    upstream.ejections++;
    const ms = Math.min(maxEjection, baseEjection * 2 ** (upstream.ejections - 1));
    upstream.ejectedUntil = now + ms;
    upstream.consecutive5xx = 0;
    upstream.consecutiveConnectFailures = 0;
    upstream.readmissionNoted = false;
    this.deps.onEject?.(upstream);
    this.deps.logger.warn(
      { upstream: upstream.id, ejectionMs: ms, ejections: upstream.ejections },
      'upstream ejected after consecutive failures',
    );
  }
}
