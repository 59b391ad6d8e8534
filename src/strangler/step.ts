import { TrellisError } from '../core/errors.js';
import type { KeyValueStore } from '../stores/types.js';
import { readSnapshots } from './reports.js';
import {
  type HistoryEntry,
  MigrationState,
  MODES,
  type Mode,
  type RouteState,
  type StateChange,
} from './state.js';

/** A change an operator asks for (the CLI's `strangler set`, the dashboard's `strangler.set`). */
export interface StepRequest extends Omit<StateChange, 'onlyIf'> {
  /** Step forward without the guard rails' minimum sample. */
  force?: boolean;
}

/** Refuses a mode that does not exist, before anything is read or written. */
export function checkMode(route: string, mode: string): asserts mode is Mode {
  if (!(MODES as readonly string[]).includes(mode)) {
    throw new TrellisError(
      'TRELLIS_E_STRANGLER_STATE_INVALID',
      `${route}: unknown mode "${mode}": use one of ${MODES.join(', ')}; nothing changed`,
      { status: 400 },
    );
  }
}

/** Position of a state on the way from legacy to retired (canary by its weight). */
function rank(s: Pick<RouteState, 'mode' | 'weight'> | undefined): number {
  if (s === undefined) return 0;
  const i = MODES.indexOf(s.mode);
  return s.mode === 'canary' ? i + s.weight / 100 : i;
}

/** `canary 10 %`, `shadow`, or "the file's mode" before anything was written. */
export function describeState(s: Pick<RouteState, 'mode' | 'weight'> | undefined): string {
  if (s === undefined) return "the file's mode";
  return s.mode === 'canary' ? `canary ${s.weight} %` : s.mode;
}

/**
 * Writes a route's next mode to the migration state every gateway instance follows. A step
 * forward (anything but shadow) is refused while an instance's guard rails have not seen the
 * evidence yet, unless `force`: one rule for the CLI and the dashboard.
 */
export async function stepRoute(
  store: KeyValueStore,
  prefix: string,
  route: string,
  request: StepRequest,
): Promise<{ before: RouteState | undefined; written: HistoryEntry }> {
  if (request.mode !== undefined) checkMode(route, request.mode);
  const state = new MigrationState(store, prefix);
  const before = await state.get(route);
  const mode = (request.mode ?? before?.mode ?? 'legacy') as Mode;
  const next = { mode, weight: request.weight ?? (mode === 'canary' ? (before?.weight ?? 0) : 0) };
  if (!request.force && rank(next) > rank(before) && mode !== 'shadow') {
    const held = (await readSnapshots(store, prefix, route)).filter(
      (s) => s.guard !== undefined && s.guard !== null && s.guard.verdict.action !== 'ok',
    );
    if (held.length > 0) {
      const g = held[0]!.guard!;
      throw new TrellisError(
        'TRELLIS_E_STRANGLER_STEP_REFUSED',
        `${route}: not stepping forward to ${describeState(next)}: the guard rails on ${held[0]!.instance} say "${'why' in g.verdict ? g.verdict.why : g.verdict.action}"; wait for the evidence or add --force; nothing changed`,
        { status: 409 },
      );
    }
  }
  const written = await state.set(route, {
    ...(request.mode === undefined ? {} : { mode }),
    ...(request.weight === undefined ? {} : { weight: request.weight }),
    ...(request.reverseShadow === undefined ? {} : { reverseShadow: request.reverseShadow }),
    by: request.by,
    ...(request.reason === undefined ? {} : { reason: request.reason }),
  });
  return { before, written };
}
