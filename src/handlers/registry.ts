import { translateHandler } from '../acl/handler.js';
import { staticHandler } from '../static/index.js';
import { stranglerHandler } from '../strangler/handler.js';
import { aggregateHandler } from './aggregate/index.js';
import { proxyHandler } from './proxy/index.js';
import { respondHandler } from './respond/index.js';
import type { HandlerDefinition } from './types.js';

/**
 * The built-in route handler types, by the key used in files: the gateway's default registry
 * (`gatewayTypes`). Adding one is a folder plus one line here; a library user adds their own
 * with `extendTypes` instead.
 */
export const handlerTypes: ReadonlyArray<HandlerDefinition> = [
  proxyHandler as HandlerDefinition,
  respondHandler as HandlerDefinition,
  aggregateHandler,
  translateHandler as HandlerDefinition,
  staticHandler as HandlerDefinition,
  stranglerHandler as HandlerDefinition,
];
