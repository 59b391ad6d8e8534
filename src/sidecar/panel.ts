import { maskString } from '../admin/mask.js';
import type { AdminPanel } from '../admin/panels.js';
import type { SubscriptionConfig } from './schema.js';
import type { AppSupervisor } from './supervisor.js';

/**
 * The sidecar's dashboard panel: the app it runs (state, pid, restarts), the building blocks
 * behind the platform API (URLs with credentials masked) and the subscriptions it delivers.
 */
export function sidecarPanel(
  app: AppSupervisor,
  stores: Readonly<Record<string, string>>,
  subscriptions: readonly SubscriptionConfig[],
): AdminPanel {
  return {
    kind: 'sidecar',
    id: `sidecar:${app.name}`,
    title: `Sidecar of ${app.name}`,
    view: () => ({
      app: { name: app.name, state: app.state, pid: app.pid ?? null, restarts: app.restarts },
      stores: Object.fromEntries(Object.entries(stores).map(([k, url]) => [k, maskString(url)])),
      subscriptions: subscriptions.map((s) => ({ topic: s.topic, path: s.path, group: s.group ?? null })),
    }),
  };
}
