/** `trellis/sidecar`: run an app beside a sidecar (supervision, inbound offloading, platform API). */

export { OPENAPI } from './api/openapi.js';
export { type PlatformApi, type PlatformApiDeps, startPlatformApi } from './api/server.js';
export { APP_SERVICE, type AppGate, INBOUND_LISTENER, parseSidecarConfig, sidecarRole } from './role.js';
export { type AppConfig, type SidecarConfig, type SubscriptionConfig, sidecarSchema } from './schema.js';
export { type Sidecar, type StartSidecarOptions, startSidecar } from './sidecar.js';
export { type AppExit, type AppState, AppSupervisor, type SupervisorOptions } from './supervisor.js';
