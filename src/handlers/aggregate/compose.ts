import { applyRename, deletePath, getPath, limitArray, project, setPath } from '../../shape/paths.js';
import type { PartPlan, Plan, Shaping } from './plan.js';

/**
 * Composition: each part's answer is narrowed (`target`), filtered (allow, deny), renamed and
 * cut (`limit`), then merged at the top or grouped under a key; the final `shape` step runs on
 * the whole. For a fan-out part the per-part steps apply to each element.
 */
export function composeResponse(
  plan: Plan,
  bodies: readonly unknown[],
  ok: readonly boolean[],
): Record<string, unknown> {
  let out: Record<string, unknown> = {};
  for (const part of plan.parts) {
    if (part.internal || !ok[part.index]) continue;
    const value = shapePart(part, bodies[part.index]);
    if (part.placement.merge && isObject(value)) mergeInto(out, value);
    else setPath(out, part.placement.merge ? [{ key: part.name }] : part.placement.at, value);
  }
  const shaped = applyShaping(plan.shape, out);
  out = isObject(shaped) ? shaped : {};
  return out;
}

function shapePart(part: PartPlan, body: unknown): unknown {
  if (part.forEach) return Array.isArray(body) ? body.map((el) => shapeOne(part, el)) : body;
  return shapeOne(part, body);
}

function shapeOne(part: PartPlan, body: unknown): unknown {
  const v = part.target ? getPath(body, part.target) : body;
  return applyShaping(part.shaping, v);
}

/** Allow, deny, rename, limit, in that order, on one value (mutated in place where it can be). */
export function applyShaping(s: Shaping, value: unknown): unknown {
  let v = value;
  if (s.allow !== undefined) v = project(v, s.allow);
  for (const d of s.deny) deletePath(v, d);
  for (const r of s.renames) applyRename(v, r);
  for (const l of s.limits) limitArray(v, l.path, l.max);
  return v;
}

/**
 * Object.assign would treat an upstream's own `"__proto__"` member (which JSON.parse creates) as
 * a prototype to set; copying own keys and skipping that one keeps answers from reshaping `out`.
 */
function mergeInto(out: Record<string, unknown>, value: Record<string, unknown>): void {
  for (const key of Object.keys(value)) if (key !== '__proto__') out[key] = value[key];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
