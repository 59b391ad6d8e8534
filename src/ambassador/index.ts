/** `trellis/ambassador`: an outbound proxy beside the client (the Ambassador pattern). */

// Instances of a remote service register themselves where an ambassador's `discovery.registry` watches.
export {
  type RegisterOptions,
  type Registration,
  registerService,
} from '../http/upstream/discovery/index.js';
export {
  type Ambassador,
  ambassadorRole,
  parseAmbassadorConfig,
  type StartAmbassadorOptions,
  startAmbassador,
} from './ambassador.js';
export { ambassadorTypes } from './compile.js';
export { type AmbassadorConfig, ambassadorSchema, type RemoteConfig } from './schema.js';
