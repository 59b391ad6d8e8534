import type { AdminPanel } from '../admin/panels.js';
import type { ConfigClient } from './client.js';
import { flagSchema } from './flags.js';

/**
 * A dashboard panel for a configuration client: where its documents come from (live or
 * last-known-good), each document's revision, author and time, and the feature flags with
 * their rollout. Values are not shown: they may hold secrets. Serve it with `startAdminListener`.
 */
export function configPanel(
  client: ConfigClient,
  title = 'Configuration',
  flagsPrefix = 'flags/',
): AdminPanel {
  return {
    kind: 'config',
    id: `config:${title}`,
    title,
    view: () => {
      const docs = client.keys().flatMap((key) => {
        const d = client.document(key);
        return d ? [d] : [];
      });
      return {
        health: client.health(),
        documents: docs.map((d) => ({ key: d.key, revision: d.revision, author: d.author, time: d.time })),
        flags: docs
          .filter((d) => d.key.startsWith(flagsPrefix))
          .map((d) => {
            const flag = flagSchema.safeParse(d.value);
            return flag.success
              ? {
                  name: d.key.slice(flagsPrefix.length),
                  enabled: flag.data.enabled,
                  rollout: flag.data.rollout ?? null,
                  rules: flag.data.rules.length,
                }
              : { name: d.key.slice(flagsPrefix.length), malformed: true };
          }),
      };
    },
  };
}
