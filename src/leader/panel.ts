import type { AdminPanel } from '../admin/panels.js';
import type { LeaderElector } from './elector.js';

/**
 * A dashboard panel for one candidate: who leads the group now (as this candidate last saw it),
 * whether it is this one, and the term's fencing token. Serve it with `startAdminListener`.
 */
export function leaderPanel(elector: LeaderElector, title = `Leader of ${elector.group}`): AdminPanel {
  return {
    kind: 'leader',
    id: `leader:${elector.group}:${elector.identity}`,
    title,
    view: () => ({
      group: elector.group,
      identity: elector.identity,
      isLeader: elector.isLeader,
      leader: elector.leader?.identity ?? null,
      token: elector.leader?.token ?? null,
      leaseDurationMs: elector.timing.leaseDuration,
    }),
  };
}
