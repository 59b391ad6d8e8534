/**
 * `trellis/runtime`: the data-plane engine every HTTP role (gateway, sidecar, ambassador) is a
 * thin composition of: roles, configuration providers, the request context, the response phase,
 * and the type registries of handlers and middlewares. See docs/architecture.md.
 */

export type { ActionCaller, AdminAction, AdminPanel, AdminParts, PanelView } from '../admin/panels.js';
export { type AdminListener, type AdminListenerOptions, startAdminListener } from '../admin/standalone.js';
export type { ResponseFilter, ResponseHead, ResponseSink } from '../http/response.js';
export { FlatHead, TrellisResponse } from '../http/response.js';
export type { Handler, Middleware, RequestContext } from '../http/types.js';
export { compose } from '../http/types.js';
export type { SharedStoreHealth, SharedStores } from '../stores/shared.js';
export type { AdminListen } from './admin-listen.js';
export {
  type CompileDeps,
  type CompiledListener,
  type CompiledRoute,
  closeGeneration,
  type Generation,
  GenerationParts,
  listenerOf,
  type RouteShape,
} from './compile.js';
export { type ContextOptions, createRequestContext, RuntimeContext } from './context.js';
export { type ConfigStoreProviderOptions, configStoreProvider } from './providers/config-store.js';
export { type FileProviderOptions, fileProvider, readConfigText } from './providers/file.js';
export { type MemoryProvider, memoryProvider } from './providers/memory.js';
export type { ConfigProvider, ConfigSink, ReloadResult } from './providers/types.js';
export {
  extendTypes,
  findHandlerType,
  findMiddlewareType,
  type TypeAdditions,
  type TypeRegistry,
} from './registry.js';
export {
  type AdminMeta,
  type Prepared,
  type RoleDefinition,
  type RoleSettings,
  type Runtime,
  type RuntimeOptions,
  startRuntime,
} from './runtime.js';
export { checkStoreUrl, STORE_SCHEMES } from './stores.js';
