export * from './config.js';
export * from './errors.js';
export * from './lifecycle.js';
export * from './logger.js';
export * from './metrics.js';
export * from './suggest.js';
export * from './units.js';
