import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import type { AdminParts } from '../admin/panels.js';
import type { Middleware } from '../http/types.js';
import type { SharedStores } from '../stores/shared.js';

/** What a middleware may use when it is created (at load or reload). */
export interface MiddlewareDeps {
  logger: Logger;
  metrics: Registry;
  /** The name the file gave this middleware instance (`per-client-limit`). */
  name: string;
  /** The configuration file's folder, for relative paths (keys, certificates). */
  baseDir: string;
  /** Named store URLs from the file's `stores:` section (`shared: redis://…`). */
  stores: Record<string, string>;
  /** The runtime's stores, opened once per process and shared (use these, never open your own). */
  shared: SharedStores;
}

/** What a middleware says about what it depends on (a key service, a shared store), for `/readyz`. */
export interface HealthReport {
  /** `ok`; `degraded`: serving, on a fallback (stale keys, local counters); `unavailable`: refusing. */
  status: 'ok' | 'degraded' | 'unavailable';
  detail?: string;
}

/**
 * A created middleware; `close` releases timers and connections when a reload replaces it,
 * `health` reports the state of what it depends on (shown by `/readyz`).
 */
export type MiddlewareInstance = Middleware & {
  close?: () => Promise<void>;
  health?: () => HealthReport;
} & AdminParts;

/**
 * One kind of middleware, as written in a file: `middlewares: { name: { <type>: options } }`.
 * Each lives in `middlewares/<type>/index.ts` and is listed in `registry.ts`.
 */
export interface MiddlewareDefinition<S extends z.ZodType = z.ZodType> {
  /** The key in the file: `jwt`, `rateLimit`, `cors`, … */
  readonly type: string;
  /** Options schema; strict objects so unknown options are errors. */
  readonly options: S;
  create(options: z.output<S>, deps: MiddlewareDeps): MiddlewareInstance | Promise<MiddlewareInstance>;
}

/** Helps a definition keep its option types without repeating them. */
export function defineMiddleware<S extends z.ZodType>(def: MiddlewareDefinition<S>): MiddlewareDefinition<S> {
  return def;
}
