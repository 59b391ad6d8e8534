/**
 * `trellis/gateway`: run a gateway from code, build route tables, and the contracts for adding
 * middlewares and route handlers.
 */

export { handlerTypes } from '../handlers/registry.js';
export type { HandlerDefinition, HandlerDeps, HandlerInstance, ServiceReference } from '../handlers/types.js';
export { defineHandler } from '../handlers/types.js';
export { middlewareTypes } from '../middlewares/registry.js';
export type { MiddlewareDefinition, MiddlewareDeps, MiddlewareInstance } from '../middlewares/types.js';
export { defineMiddleware } from '../middlewares/types.js';
export { DEFAULT_FRONTEND, MAIN_LISTENER } from './compile.js';
export {
  type Gateway,
  parseGatewayConfig,
  type ReloadResult,
  type StartGatewayOptions,
  startGateway,
} from './gateway.js';
export { type ReferencedFile, referencedFileProblem, referencedFiles } from './referenced-files.js';
export {
  checkPathPattern,
  compileRoutes,
  hostOnly,
  type RouteEntry,
  type RouteHit,
  type RouteMatch,
  type RouteTable,
  type ValueCondition,
} from './router.js';
export { type FrontendConfig, type GatewayConfig, gatewaySchema, type RouteConfig } from './schema.js';
export { validateGatewayFile } from './validate-file.js';
