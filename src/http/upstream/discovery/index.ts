import { TrellisError } from '../../../core/errors.js';
import type { KeyValueStore } from '../../../stores/types.js';
import { DnsDiscovery } from './dns.js';
import { RegistryDiscovery } from './registry.js';
import type { DiscoveryDef } from './schema.js';
import type { DiscoveryDeps, DiscoverySource } from './types.js';

export { DnsDiscovery } from './dns.js';
export { parseRegistryEntry, type RegistryEntry, registryEntrySchema } from './entry.js';
export { type RegisterOptions, type Registration, registerService } from './register.js';
export { RegistryDiscovery } from './registry.js';
export * from './schema.js';
export * from './types.js';

/** What opening a source needs beyond logging: the registry's store. */
export interface SourceDeps extends DiscoveryDeps {
  /** Opens a store by name or URL (the runtime's shared stores). */
  keyValue?: ((store: string) => Promise<KeyValueStore>) | undefined;
}

/** The source a service's `discovery:` names (not started yet). */
export function createDiscovery(service: string, def: DiscoveryDef, deps: SourceDeps): DiscoverySource {
  if (def.dns !== undefined) return new DnsDiscovery(def.dns, deps);
  const registry = def.registry!;
  if (deps.keyValue === undefined) {
    throw new TrellisError(
      'TRELLIS_E_DISCOVERY_STORE',
      `service "${service}" discovers its upstreams in the store "${registry.store}", and nothing here opens stores: pass keyValue to the pool (the runtime does)`,
    );
  }
  const { keyValue } = deps;
  // Asked once now so an unknown store name fails the configuration at load, not later; asked
  // again after each failure (the runtime's shared stores hand back the same connection).
  let first: Promise<KeyValueStore> | undefined = keyValue(registry.store);
  first.catch(() => undefined);
  const open = () => {
    const store = first ?? keyValue(registry.store);
    first = undefined;
    return store;
  };
  return new RegistryDiscovery(registry, open, deps);
}
