import type { AdminPanel } from '../admin/panels.js';
import type { HedgeCounts } from './metrics.js';

export interface RemoteView {
  name: string;
  policies: unknown[];
  upstreams: {
    id: string;
    healthy: boolean;
    ejected: boolean;
    inFlight: number;
    breaker: string;
    /** Where the upstream came from: the file, or discovery (DNS, a registry). */
    source?: 'static' | 'dns' | 'registry' | undefined;
  }[];
  /** The remote's hedges, when it hedges. */
  hedges?: Readonly<HedgeCounts>;
}

/**
 * The ambassador's dashboard panel: per remote, its deadline, per-try timeout and retries, its
 * hedges (sent, won) when it hedges, and each upstream's source (static, dns, registry),
 * health, ejection and breaker state (closed, open, half-open).
 */
export function ambassadorPanel(remotes: () => RemoteView[]): AdminPanel {
  return {
    kind: 'ambassador',
    id: 'ambassador',
    title: 'Ambassador: remote services',
    view: () => ({
      remotes: remotes().map((r) => {
        const policy = (name: string) =>
          r.policies.find((p) => (p as { policy: string }).policy === name) as
            | Record<string, unknown>
            | undefined;
        return {
          name: r.name,
          timeout: policy('deadline')?.timeout,
          perTryTimeout: policy('perTryTimeout')?.perTryTimeout,
          retryAttempts: policy('retry')?.attempts,
          ...(r.hedges === undefined ? {} : { hedges: { sent: r.hedges.sent, won: r.hedges.won } }),
          upstreams: r.upstreams.map((u) => ({
            id: u.id,
            source: u.source ?? 'static',
            healthy: u.healthy,
            ejected: u.ejected,
            inFlight: u.inFlight,
            breaker: u.breaker,
          })),
        };
      }),
    }),
  };
}
