import { readFileSync } from 'node:fs';
import { formatPath } from '../core/config.js';
import { TrellisError } from '../core/errors.js';

/** `secret://env/NAME` or `secret://file/PATH`: documents hold references, never secret values. */
const REF_RE = /^secret:\/\/(env|file)\/(.+)$/;
/** Field names that must hold a reference rather than a plain value. */
const SECRET_NAME_RE = /(password|passwd|secret|token|api[-_]?key|private[-_]?key|credential)/i;

export const MASK = '***';

/** True when `value` is a secret reference. */
export function isSecretRef(value: unknown): value is string {
  return typeof value === 'string' && REF_RE.test(value);
}

/**
 * Paths of fields whose name says "secret" but hold a plain string instead of a reference, so a
 * secret never lands in the store, its history or a watch stream by accident.
 */
export function plaintextSecretPaths(value: unknown): string[] {
  const found: string[] = [];
  walk(value, [], (v, path) => {
    const name = path[path.length - 1];
    if (typeof name === 'string' && SECRET_NAME_RE.test(name) && typeof v === 'string' && v !== '') {
      if (!isSecretRef(v)) found.push(formatPath(path));
    }
  });
  return found;
}

/**
 * Resolves every secret reference in `value` (a deep copy; the input is unchanged). Only clients
 * do this, in their own process; servers and the CLI pass references through untouched.
 * Throws TRELLIS_E_CONFIG_SECRET_UNRESOLVED naming the reference (never a value).
 */
export function resolveSecrets(
  value: unknown,
  env: Record<string, string | undefined> = process.env,
): unknown {
  return map(value, [], (v, path) => {
    if (!isSecretRef(v)) return v;
    const [, kind, name] = REF_RE.exec(v)!;
    if (kind === 'env') {
      const resolved = env[name!];
      if (resolved === undefined) {
        throw unresolved(v, path, `environment variable ${name} is not set in this process`);
      }
      return resolved;
    }
    try {
      return readFileSync(name!, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw unresolved(v, path, `cannot read ${name} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  });
}

/** A copy of `value` with every secret reference replaced by `***`, for output and logs. */
export function maskSecrets(value: unknown): unknown {
  return map(value, [], (v) => (isSecretRef(v) ? MASK : v));
}

function unresolved(ref: string, path: PropertyKey[], why: string): TrellisError {
  return new TrellisError(
    'TRELLIS_E_CONFIG_SECRET_UNRESOLVED',
    `${formatPath(path) || '(document)'}: secret ${ref} cannot be resolved: ${why}`,
  );
}

function walk(value: unknown, path: PropertyKey[], visit: (v: unknown, path: PropertyKey[]) => void): void {
  visit(value, path);
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) walk(v, [...path, i], visit);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) walk(v, [...path, k], visit);
  }
}

function map(
  value: unknown,
  path: PropertyKey[],
  leaf: (v: unknown, path: PropertyKey[]) => unknown,
): unknown {
  if (Array.isArray(value)) return value.map((v, i) => map(v, [...path, i], leaf));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, map(v, [...path, k], leaf)]));
  }
  return leaf(value, path);
}
