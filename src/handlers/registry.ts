import { translateHandler } from '../acl/handler.js';
import { staticHandler } from '../static/index.js';
import { stranglerHandler } from '../strangler/handler.js';
import { aggregateHandler } from './aggregate/index.js';
import { proxyHandler } from './proxy/index.js';
import { respondHandler } from './respond/index.js';
import type { HandlerDefinition } from './types.js';

/**
 * Every route handler type the gateway knows, by the key used in files. Adding one is a folder
 * plus one line here.
 */
export const handlerTypes: ReadonlyArray<HandlerDefinition> = [
  proxyHandler as HandlerDefinition,
  respondHandler as HandlerDefinition,
  aggregateHandler,
  translateHandler as HandlerDefinition,
  staticHandler as HandlerDefinition,
  stranglerHandler as HandlerDefinition,
];

export function findHandlerType(type: string): HandlerDefinition | undefined {
  return handlerTypes.find((h) => h.type === type);
}
