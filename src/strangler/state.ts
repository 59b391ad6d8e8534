import { join } from 'node:path';
import { z } from 'zod';
import { isTrellisError, TrellisError } from '../core/errors.js';
import type { KeyValueStore } from '../stores/types.js';

/**
 * Migration state: each strangled route's mode and canary weight, in a KeyValueStore (SQLite by
 * default, PostgreSQL, Redis or etcd beyond), so every gateway instance reads the same state and
 * a change (`trellis strangler set`, the admin API, an automatic step back) reaches all of them
 * through the store's watch, without a reload. Every change is kept in a history with its author,
 * time and reason.
 *
 * Keys: `<prefix>routes/<route>` holds the current state; `<prefix>history/<route>/<revision>`
 * one entry per change (the revision zero-padded so keys sort in order).
 */

/** The SQLite file the migration state lives in when a route names no store: beside the gateway file. */
export function defaultStateStore(baseDir: string): string {
  return `sqlite:${join(baseDir, 'trellis-strangler.db')}`;
}

export const MODES = ['legacy', 'shadow', 'canary', 'modern', 'retired'] as const;
export type Mode = (typeof MODES)[number];

export const routeStateSchema = z.strictObject({
  mode: z.enum(MODES),
  /** Per cent of keys on the modern side in canary mode (0..100, two decimals). */
  weight: z.number().min(0).max(100),
  /** In modern mode: still send a copy to legacy and compare (catches regressions). */
  reverseShadow: z.boolean().default(false),
  by: z.string(),
  at: z.string(),
  reason: z.string().optional(),
});
export type RouteState = z.output<typeof routeStateSchema>;

export interface StateChange {
  mode?: Mode;
  weight?: number;
  reverseShadow?: boolean;
  by: string;
  reason?: string;
  /** Write only while the route is still in this mode (a guard step back must not repeat on every instance). */
  onlyIf?: Mode;
}

export interface HistoryEntry extends RouteState {
  route: string;
  revision: number;
}

/** Checks a requested change before anything is written; the message says what to write instead. */
export function validateChange(current: RouteState | undefined, change: StateChange): RouteState | string {
  const mode = change.mode ?? current?.mode ?? 'legacy';
  if (!MODES.includes(mode)) return `unknown mode "${String(change.mode)}": use one of ${MODES.join(', ')}`;
  const weight =
    change.weight ??
    (mode === 'canary' ? (current?.weight ?? 0) : mode === 'modern' ? 100 : (current?.weight ?? 0));
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0 || weight > 100) {
    return `weight ${String(change.weight)} is not a percentage: write a number from 0 to 100`;
  }
  if (mode === 'canary' && (weight <= 0 || weight >= 100)) {
    return `a canary needs a weight between 0 and 100 (exclusive), not ${weight}: use shadow for 0 and modern for 100`;
  }
  if (change.by.trim() === '') return 'a change needs an author (by)';
  return {
    mode,
    weight: Math.round(weight * 100) / 100,
    reverseShadow: change.reverseShadow ?? current?.reverseShadow ?? false,
    by: change.by,
    at: new Date().toISOString(),
    ...(change.reason === undefined ? {} : { reason: change.reason }),
  };
}

const ROUTE_NAME = /^[\w.:-]{1,200}$/;

/** The migration state of every strangled route, in one KeyValueStore. */
export class MigrationState {
  constructor(
    readonly store: KeyValueStore,
    readonly prefix = 'trellis/strangler/',
  ) {}

  #key(route: string): string {
    if (!ROUTE_NAME.test(route)) {
      throw new TrellisError(
        'TRELLIS_E_STRANGLER_STATE_INVALID',
        `"${route}" is not a route name (letters, digits, . _ : -)`,
      );
    }
    return `${this.prefix}routes/${route}`;
  }

  /** The current state of a route, undefined when it was never set (the file's default applies). */
  async get(route: string): Promise<(RouteState & { revision: number }) | undefined> {
    const entry = await this.store.get(this.#key(route));
    if (entry === undefined) return undefined;
    return { ...parseState(entry.value, entry.key), revision: entry.revision };
  }

  /** Every route's state. */
  async list(): Promise<{ states: Map<string, RouteState>; revision: number }> {
    const { entries, revision } = await this.store.list(`${this.prefix}routes/`);
    const states = new Map<string, RouteState>();
    for (const e of entries)
      states.set(e.key.slice(`${this.prefix}routes/`.length), parseState(e.value, e.key));
    return { states, revision };
  }

  /**
   * Changes a route's state with compare-and-set (a concurrent change is retried on the fresh
   * state, never overwritten blindly) and appends the history entry. Throws
   * TRELLIS_E_STRANGLER_STATE_INVALID, with the state unchanged, for a bad mode or weight.
   * Resolves to undefined, writing nothing, when `onlyIf` no longer holds.
   */
  async set(route: string, change: StateChange & { onlyIf: Mode }): Promise<HistoryEntry | undefined>;
  async set(route: string, change: StateChange): Promise<HistoryEntry>;
  async set(route: string, change: StateChange): Promise<HistoryEntry | undefined> {
    const key = this.#key(route);
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = await this.store.get(key);
      const current = entry === undefined ? undefined : parseState(entry.value, key);
      if (change.onlyIf !== undefined && (current?.mode ?? change.onlyIf) !== change.onlyIf) return undefined;
      const next = validateChange(current, change);
      if (typeof next === 'string')
        throw new TrellisError('TRELLIS_E_STRANGLER_STATE_INVALID', `${route}: ${next}; nothing changed`);
      try {
        const written = await this.store.put(key, JSON.stringify(next), {
          expectedRevision: entry?.revision ?? 0,
        });
        await this.store.put(
          `${this.prefix}history/${route}/${String(written.revision).padStart(12, '0')}`,
          JSON.stringify(next),
        );
        return { ...next, route, revision: written.revision };
      } catch (err) {
        if (isTrellisError(err, 'TRELLIS_E_KV_CONFLICT')) continue;
        throw err;
      }
    }
    throw new TrellisError(
      'TRELLIS_E_STRANGLER_STATE_INVALID',
      `${route}: the state kept changing underneath; try again`,
    );
  }

  /** A route's changes, oldest first. */
  async history(route: string): Promise<HistoryEntry[]> {
    this.#key(route);
    const { entries } = await this.store.list(`${this.prefix}history/${route}/`);
    return entries.map((e) => ({
      ...parseState(e.value, e.key),
      route,
      revision: Number(e.key.slice(e.key.lastIndexOf('/') + 1)),
    }));
  }

  /**
   * Calls `onChange` with every route's state now, then on every change, until `signal` aborts.
   * A watch gap (compaction) re-reads the whole state and carries on.
   */
  async follow(onChange: (route: string, state: RouteState) => void, signal: AbortSignal): Promise<void> {
    const routes = `${this.prefix}routes/`;
    while (!signal.aborted) {
      const { states, revision } = await this.list();
      for (const [route, state] of states) onChange(route, state);
      try {
        for await (const change of this.store.watch(routes, { fromRevision: revision, signal })) {
          if (change.type !== 'put' || change.value === undefined) continue;
          onChange(change.key.slice(routes.length), parseState(change.value, change.key));
        }
      } catch (err) {
        if (signal.aborted) return;
        if (!isTrellisError(err, 'TRELLIS_E_KV_WATCH_GAP')) throw err;
      }
    }
  }
}

function parseState(text: string, key: string): RouteState {
  try {
    return routeStateSchema.parse(JSON.parse(text));
  } catch (err) {
    throw new TrellisError(
      'TRELLIS_E_STRANGLER_STATE_INVALID',
      `${key} does not hold a route state: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}
