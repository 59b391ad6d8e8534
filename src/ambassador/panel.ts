import type { AdminPanel } from '../admin/panels.js';

interface RemoteView {
  name: string;
  policies: unknown[];
  upstreams: { id: string; healthy: boolean; ejected: boolean; inFlight: number; breaker: string }[];
}

/**
 * The ambassador's dashboard panel: per remote, its deadline, per-try timeout and retries, and
 * each upstream's health, ejection and breaker state (closed, open, half-open).
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
          upstreams: r.upstreams.map((u) => ({
            id: u.id,
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
