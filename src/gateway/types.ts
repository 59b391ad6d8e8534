import { handlerTypes } from '../handlers/registry.js';
import { middlewareTypes } from '../middlewares/registry.js';
import type { TypeRegistry } from '../runtime/registry.js';

/** The gateway's default types: every built-in handler and middleware. */
export const gatewayTypes: TypeRegistry = Object.freeze({
  handlers: handlerTypes,
  middlewares: middlewareTypes,
});
