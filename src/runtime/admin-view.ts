import { maskSecrets } from '../admin/mask.js';
import type { AdminSource } from '../admin/server.js';
import type { Generation } from './compile.js';
import type { AdminMeta } from './runtime.js';

/** What /admin/routes, /admin/services and /admin/config show for the active generation. */
export function adminView(
  current: () => Generation,
  meta: () => AdminMeta,
): Pick<AdminSource, 'routes' | 'services' | 'config'> {
  return {
    routes() {
      const frontends: Record<string, unknown[]> = {};
      for (const [listener, compiled] of current().listeners) {
        for (const r of compiled.routes) {
          frontends[r.frontend] ??= [];
          frontends[r.frontend]!.push({
            name: r.name,
            listener,
            match: r.match,
            middlewares: r.middlewares,
            handler: r.handlerType,
            ...(r.service === '' ? {} : { service: r.service }),
          });
        }
      }
      return { version: current().version, frontends };
    },
    services() {
      return { services: [...current().services.values()].map((p) => p.status()) };
    },
    config() {
      const m = meta();
      return {
        version: m.version,
        source: m.source,
        loadedAt: m.loadedAt,
        lastReload: m.lastReload ?? null,
        config: maskSecrets(current().config),
      };
    },
  };
}
