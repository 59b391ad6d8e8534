/** `trellis/ambassador`: an outbound proxy beside the client (the Ambassador pattern). */

export {
  type Ambassador,
  ambassadorRole,
  parseAmbassadorConfig,
  type StartAmbassadorOptions,
  startAmbassador,
} from './ambassador.js';
export { ambassadorTypes } from './compile.js';
export { type AmbassadorConfig, ambassadorSchema, type RemoteConfig } from './schema.js';
