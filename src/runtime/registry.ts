import { TrellisError } from '../core/errors.js';
import type { HandlerDefinition } from '../handlers/types.js';
import type { MiddlewareDefinition } from '../middlewares/types.js';

/**
 * The handler and middleware types a runtime knows, as a value: the schema builder, compile and
 * the admin view all take one, so a library user can run a gateway with types of their own
 * (`extendTypes(gatewayTypes, { handlers: [myHandler] })`) and a sidecar can hand the same
 * middlewares to a second runtime. The built-in set is each role's default.
 */
export interface TypeRegistry {
  /** Route handler types, by the key a route uses (`proxy:`, `respond:`, …). */
  readonly handlers: readonly HandlerDefinition[];
  /** Middleware types, by the key a `middlewares:` entry uses (`jwt:`, `cors:`, …). */
  readonly middlewares: readonly MiddlewareDefinition[];
}

/** Additional types for `extendTypes`. */
export interface TypeAdditions {
  handlers?: readonly HandlerDefinition[] | undefined;
  middlewares?: readonly MiddlewareDefinition[] | undefined;
}

function addAll<T extends { type: string }>(kind: string, base: readonly T[], extra: readonly T[]): T[] {
  const out = [...base];
  for (const def of extra) {
    // A second definition under a known key would silently change what files mean.
    if (out.some((d) => d.type === def.type)) {
      throw new TrellisError(
        'TRELLIS_E_USAGE',
        `${kind} type "${def.type}" is already registered: give yours another name`,
      );
    }
    out.push(def);
  }
  return out;
}

/** A registry with `base`'s types plus `extra` (a type already in `base` is refused). */
export function extendTypes(base: TypeRegistry, extra: TypeAdditions): TypeRegistry {
  return Object.freeze({
    handlers: Object.freeze(addAll('handler', base.handlers, extra.handlers ?? [])),
    middlewares: Object.freeze(addAll('middleware', base.middlewares, extra.middlewares ?? [])),
  });
}

/** The handler type named `type`, if registered. */
export function findHandlerType(types: TypeRegistry, type: string): HandlerDefinition | undefined {
  return types.handlers.find((h) => h.type === type);
}

/** The middleware type named `type`, if registered. */
export function findMiddlewareType(types: TypeRegistry, type: string): MiddlewareDefinition | undefined {
  return types.middlewares.find((m) => m.type === type);
}
