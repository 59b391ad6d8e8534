import { apiKeyMiddleware } from './api-key/index.js';
import { basicAuthMiddleware } from './basic-auth/index.js';
import { bodyLimitMiddleware } from './body-limit/index.js';
import { cacheMiddleware } from './cache/index.js';
import { compressMiddleware } from './compress/index.js';
import { corsMiddleware } from './cors/index.js';
import { forwardAuthMiddleware } from './forward-auth/index.js';
import { headersMiddleware } from './headers/index.js';
import { inFlightMiddleware } from './in-flight/index.js';
import { ipFilterMiddleware } from './ip-filter/index.js';
import { jwtMiddleware } from './jwt/index.js';
import { rateLimitMiddleware } from './rate-limit/index.js';
import { timeoutMiddleware } from './timeout/index.js';
import type { MiddlewareDefinition } from './types.js';

/**
 * The built-in middleware types, by the key used in files: the default of every runtime
 * (`gatewayTypes`). Adding one is a folder plus one line here; a library user adds their own
 * with `extendTypes` instead.
 */
export const middlewareTypes: ReadonlyArray<MiddlewareDefinition> = [
  // Gateway Offloading (O4)
  headersMiddleware,
  ipFilterMiddleware,
  bodyLimitMiddleware,
  timeoutMiddleware,
  corsMiddleware,
  apiKeyMiddleware,
  basicAuthMiddleware,
  forwardAuthMiddleware,
  inFlightMiddleware,
  jwtMiddleware,
  rateLimitMiddleware,
  compressMiddleware,
  cacheMiddleware,
];
