import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import type { AdminParts } from '../admin/panels.js';
import type { AccessLog, Handler } from '../http/types.js';
import type { ServicePool } from '../http/upstream/types.js';
import type { SharedStores } from '../stores/shared.js';

/** What a route handler may use when it is created (at load or reload). */
export interface HandlerDeps {
  logger: Logger;
  metrics: Registry;
  /** Every service of the configuration, by name. */
  services: ReadonlyMap<string, ServicePool>;
  /** The configuration file's folder, for relative paths. */
  baseDir: string;
  /** Named store URLs from the file's `stores:` section. */
  stores: Record<string, string>;
  /** The runtime's stores, opened once per process and shared (use these, never open your own). */
  shared: SharedStores;
  /** The route's name (for metrics and logs). */
  routeName: string;
  /** The access log (false: off), for the lines a handler writes itself, such as shadow copies'. */
  accessLog?: AccessLog | false;
}

/** A created handler; `close` releases what it holds when a reload replaces it; `panels` and `actions` show it on the admin API. */
export type HandlerInstance = Handler & { close?: () => Promise<void> } & AdminParts;

/** A service name used somewhere inside a handler's options, for load-time checking. */
export interface ServiceReference {
  /** Path inside the handler's options, e.g. `['product', 'service']`. */
  path: (string | number)[];
  service: string;
}

/**
 * One kind of route handler, as written in a file: a route has exactly one of
 * `proxy:`, `respond:`, `aggregate:`, `static:`, … Each lives in `handlers/<type>/` (or its pattern folder)
 * and is listed in `registry.ts`.
 */
export interface HandlerDefinition<S extends z.ZodType = z.ZodType> {
  readonly type: string;
  /** Options schema; strict objects so unknown options are errors. */
  readonly options: S;
  /** Services the options name, so the loader can report unknown ones with line and column. */
  references?(options: z.output<S>): ServiceReference[];
  create(options: z.output<S>, deps: HandlerDeps): HandlerInstance | Promise<HandlerInstance>;
}

export function defineHandler<S extends z.ZodType>(def: HandlerDefinition<S>): HandlerDefinition<S> {
  return def;
}
