export type {
  ConfigApi,
  ConfigChange,
  SchemaBinding,
  SetOptions,
  WatchOptions,
  WriteOptions,
} from './api.js';
export {
  type ConfigClient,
  type ConfigClientOptions,
  type ConfigHealth,
  type ConfigListener,
  createConfigClient,
  openConfigApi,
} from './client.js';
export { diffValues, formatDiff, type ValueDiff } from './diff.js';
export {
  type ConfigDocument,
  DEFAULT_LABEL,
  type DocumentFormat,
  type HistoryEntry,
} from './document.js';
export { evaluateFlag, type FeatureFlag, type FlagContext, flagSchema, rolloutBucket } from './flags.js';
export { ConfigHttpClient, type ConfigHttpClientOptions } from './http-client.js';
export { configPanel } from './panel.js';
export { ConfigRepository, type ConfigRepositoryOptions } from './repository.js';
export { isSecretRef, maskSecrets, resolveSecrets } from './secrets.js';
export { type ConfigServer, type ConfigServerOptions, startConfigServer } from './server.js';
export { compileJsonSchema, type ValidationIssue, validateDocument } from './validation.js';
