import type { AdminPanel } from '../admin/panels.js';
import type { WorkloadStatus } from './host.js';

/**
 * The host's dashboard panel: each workload's state, restarts, last exit and figures (what
 * `trellis host status` prints), so a consolidated process shows what runs inside it.
 */
export function hostPanel(
  status: () => Record<string, WorkloadStatus>,
  title = 'Host workloads',
): AdminPanel {
  return {
    kind: 'host',
    id: 'host',
    title,
    view: () => ({
      workloads: Object.entries(status()).map(([name, s]) => ({
        name,
        kind: s.kind,
        isolation: s.isolation,
        state: s.state,
        restarts: s.restarts,
        lastExit: s.lastExit ? { reason: s.lastExit.reason, at: s.lastExit.at } : undefined,
        heapBytes: s.heapBytes,
        eventLoopUtilization: s.eventLoopUtilization,
        handled: s.handled,
        errors: s.errors,
        inFlight: s.inFlight,
        ...(s.queueDepth === undefined ? {} : { queueDepth: s.queueDepth }),
        ...(s.leading === undefined ? {} : { leading: s.leading }),
      })),
    }),
  };
}
