import type { AdminPanel } from '../admin/panels.js';
import type { EventStore } from '../stores/events/types.js';
import { type Projection, projectionStatus } from './projection.js';

/**
 * A dashboard panel for the read side: each projection's position, its lag behind the event
 * store's head, and a rebuild in progress. Serve it with `startAdminListener`.
 */
export function projectionsPanel(
  store: EventStore,
  projections: Projection[],
  title = 'Projections',
): AdminPanel {
  return {
    kind: 'projections',
    id: `projections:${projections.map((p) => p.name).join(',')}`,
    title,
    view: async () => ({ projections: await projectionStatus(store, projections) }),
  };
}
