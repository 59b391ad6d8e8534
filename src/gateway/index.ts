/**
 * `trellis/gateway`: run a gateway from code, build route tables, and the contracts for adding
 * middlewares and route handlers (register yours with `extendTypes(gatewayTypes, …)`).
 */

export { handlerTypes } from '../handlers/registry.js';
export type { HandlerDefinition, HandlerDeps, HandlerInstance, ServiceReference } from '../handlers/types.js';
export { defineHandler } from '../handlers/types.js';
export type { ResponseFilter, ResponseHead, ResponseSink } from '../http/response.js';
export type { Handler, Middleware, RequestContext } from '../http/types.js';
export { middlewareTypes } from '../middlewares/registry.js';
export type { MiddlewareDefinition, MiddlewareDeps, MiddlewareInstance } from '../middlewares/types.js';
export { defineMiddleware } from '../middlewares/types.js';
export { configStoreProvider } from '../runtime/providers/config-store.js';
export { fileProvider } from '../runtime/providers/file.js';
export { type MemoryProvider, memoryProvider } from '../runtime/providers/memory.js';
export type { ConfigProvider } from '../runtime/providers/types.js';
export { extendTypes, type TypeRegistry } from '../runtime/registry.js';
export {
  checkPathPattern,
  compileRoutes,
  hostOnly,
  type RouteEntry,
  type RouteHit,
  type RouteMatch,
  type RouteTable,
  type ValueCondition,
} from '../runtime/router.js';
export { DEFAULT_FRONTEND, MAIN_LISTENER } from './compile.js';
export {
  type Gateway,
  gatewayRole,
  parseGatewayConfig,
  type ReloadResult,
  type StartGatewayOptions,
  startGateway,
} from './gateway.js';
export { type ReferencedFile, referencedFileProblem, referencedFiles } from './referenced-files.js';
export { type FrontendConfig, type GatewayConfig, gatewaySchema, type RouteConfig } from './schema.js';
export { gatewayTypes } from './types.js';
export { validateGatewayFile } from './validate-file.js';
