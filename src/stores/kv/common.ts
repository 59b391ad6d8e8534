import { TrellisError } from '../../core/errors.js';
import type { FeatureList } from '../types.js';

/** Default largest value a KeyValueStore accepts (bytes of UTF-8); etcd's request limit is 1.5 MiB. */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;
/** Longest key any backend accepts (bytes of UTF-8); keeps keys indexable on every engine. */
export const MAX_KEY_BYTES = 1024;
/** How long a watch keeps retrying while its server is unreachable before it throws TRELLIS_E_STORE_UNAVAILABLE. */
export const WATCH_OUTAGE_MS = 30_000;
/** How many changes a backend's change log keeps for watchers that resume from an old revision. */
export const DEFAULT_RETAIN_CHANGES = 100_000;

/** Builds a FeatureList: every feature in `all` except those in `lacks` (each with its reason). */
export function featureList<F extends string>(
  all: readonly F[],
  lacks: Partial<Record<F, string>> = {},
): FeatureList<F> {
  return { supports: new Set(all.filter((f) => !(f in lacks))), lacks };
}

/** Rejects keys no backend can store faithfully, with what to fix. */
export function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new TrellisError('TRELLIS_E_KV_KEY_INVALID', 'a key must be a non-empty string');
  }
  // A UTF-16 unit is at most 3 UTF-8 bytes: short keys need no byte count (the common case, per call).
  if (key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new TrellisError(
      'TRELLIS_E_KV_KEY_INVALID',
      `key "${key.slice(0, 40)}…" is ${Buffer.byteLength(key)} bytes: keys may have at most ${MAX_KEY_BYTES} bytes`,
    );
  }
}

/** Rejects values over the store's size limit before they reach the engine. */
export function checkValue(key: string, value: string, maxBytes: number): void {
  if (typeof value !== 'string') {
    throw new TrellisError(
      'TRELLIS_E_KV_VALUE_INVALID',
      `value of "${key}" must be a string (serialise it first)`,
    );
  }
  if (value.length * 3 <= maxBytes) return;
  const bytes = Buffer.byteLength(value);
  if (bytes > maxBytes) {
    throw new TrellisError(
      'TRELLIS_E_KV_VALUE_TOO_LARGE',
      `value of "${key}" is ${bytes} bytes, over this store's limit of ${maxBytes}: store large blobs elsewhere and keep a reference here`,
      { status: 413, details: { bytes, limit: maxBytes } },
    );
  }
}

/** The error every backend throws when compare-and-set fails. */
export function conflict(key: string, expected: number, actual: number): TrellisError {
  return new TrellisError(
    'TRELLIS_E_KV_CONFLICT',
    `"${key}" is at revision ${actual}, not the expected ${expected}: re-read it and retry`,
    { status: 409, details: { key, expectedRevision: expected, actualRevision: actual } },
  );
}

/** The error a watch raises when it cannot deliver every change after `from`. */
export function watchGap(from: number, oldest: number | undefined, why: string): TrellisError {
  const still = oldest === undefined ? '' : ` (oldest still available: ${oldest})`;
  return new TrellisError(
    'TRELLIS_E_KV_WATCH_GAP',
    `cannot watch from revision ${from}: ${why}${still}; re-read with list() and watch again from its revision`,
    { details: { fromRevision: from, oldestRevision: oldest } },
  );
}

/**
 * Rejects a revision (a watch's start, a write's `expectedRevision`) that is not a non-negative
 * integer. A string is refused by type, not coerced: `"1"` from a query string or a form would
 * otherwise fail compare-and-set with the baffling "at revision 1, not the expected 1".
 */
export function checkRevision(what: string, rev: number | undefined): void {
  if (rev !== undefined && !(typeof rev === 'number' && Number.isSafeInteger(rev) && rev >= 0)) {
    const got = typeof rev === 'number' ? String(rev) : `${typeof rev} ${JSON.stringify(rev) ?? String(rev)}`;
    throw new TrellisError(
      'TRELLIS_E_KV_REVISION_INVALID',
      `${what} must be a non-negative integer (a number), got ${got}${typeof rev === 'string' ? ': convert it with Number() first' : ''}`,
      { status: 400 },
    );
  }
}

/** A positive integer option from a store URL's query string (`?retain=1000`), or the default. */
export function intParam(params: URLSearchParams, name: string, fallback: number): number {
  const raw = params.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new TrellisError(
      'TRELLIS_E_STORE_URL_INVALID',
      `store URL option ${name}=${raw} must be a positive integer`,
    );
  }
  return n;
}

/** The error every operation on a closed store throws. */
export function closedError(backend: string): TrellisError {
  return new TrellisError('TRELLIS_E_STORE_CLOSED', `this ${backend} store was closed: open a new one`);
}

/**
 * Runs one driver call of a store: a failure becomes TRELLIS_E_STORE_CLOSED when the store was
 * closed meanwhile (the driver's own error would only confuse), else what `toError` makes of it
 * (a typed error for connection failures, the error itself otherwise).
 */
export async function storeCall<T>(
  backend: string,
  isClosed: () => boolean,
  toError: (err: unknown) => unknown,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isClosed()) throw closedError(backend);
    throw toError(err);
  }
}

/** The table-name option of a SQL-backed store (`?table=trellis_kv`), checked to be a plain identifier. */
export function tableParam(params: URLSearchParams, fallback: string): string {
  const table = params.get('table') ?? fallback;
  if (!/^[a-z_][a-z0-9_]{0,39}$/i.test(table)) {
    throw new TrellisError(
      'TRELLIS_E_STORE_URL_INVALID',
      `store URL option table=${table} must be a plain SQL name (letters, digits, _; at most 40)`,
    );
  }
  return table;
}
