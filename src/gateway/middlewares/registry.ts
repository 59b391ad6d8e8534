import type { MiddlewareDefinition } from './types.js';

/**
 * Every middleware type the gateway knows, by the key used in files. Adding a middleware is one
 * folder plus one line here.
 */
export const middlewareTypes: ReadonlyArray<MiddlewareDefinition> = [];

export function findMiddlewareType(type: string): MiddlewareDefinition | undefined {
  return middlewareTypes.find((m) => m.type === type);
}
