import type { HandlerDefinition } from './types.js';

/**
 * Every route handler type the gateway knows, by the key used in files. Adding one is a folder
 * plus one line here.
 */
export const handlerTypes: ReadonlyArray<HandlerDefinition> = [];

export function findHandlerType(type: string): HandlerDefinition | undefined {
  return handlerTypes.find((h) => h.type === type);
}
