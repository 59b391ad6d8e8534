import { randomUUID } from 'node:crypto';
import { TrellisError } from '../../core/errors.js';
import type { ExpectedVersion, NewEvent, RecordedEvent, SubscriptionItem } from '../types.js';

/** Throws TRELLIS_E_EVENT_VERSION_CONFLICT unless `actual` satisfies `expected`. */
export function checkExpectedVersion(
  streamId: string,
  expected: ExpectedVersion | undefined,
  actual: number,
): void {
  if (expected === undefined || expected === 'any') return;
  expectedCode(expected);
  const ok =
    expected === 'no_stream' ? actual === 0 : expected === 'exists' ? actual > 0 : actual === expected;
  if (!ok) throw versionConflict(streamId, expected, actual);
}

/** The typed conflict error, with expected and actual versions in `details`. */
export function versionConflict(streamId: string, expected: ExpectedVersion, actual: number): TrellisError {
  return new TrellisError(
    'TRELLIS_E_EVENT_VERSION_CONFLICT',
    `stream "${streamId}" is at version ${actual}, not ${String(expected)}: re-read the stream, decide again and retry`,
    { status: 409, details: { streamId, expected: expected === 'no_stream' ? 0 : expected, actual } },
  );
}

/** Encodes an expected version for SQL: -1 any, -2 exists, otherwise the exact version. */
export function expectedCode(expected: ExpectedVersion | undefined): number {
  if (expected === undefined || expected === 'any') return -1;
  if (expected === 'exists') return -2;
  if (expected === 'no_stream') return 0;
  if (!Number.isInteger(expected) || expected < 0) {
    throw new TrellisError(
      'TRELLIS_E_EVENT_INVALID',
      `expectedVersion ${String(expected)} is not valid: use 'any', 'no_stream', 'exists' or a version >= 0`,
    );
  }
  return expected;
}

/** Decodes the SQL code back to the caller's expected version (for conflict messages). */
export function expectedFromCode(code: number): ExpectedVersion {
  return code === -1 ? 'any' : code === -2 ? 'exists' : code;
}

/** An event checked and ready for a backend: data and metadata as the JSON every backend stores. */
export interface PreparedEvent {
  id: string;
  type: string;
  /** The data as it will read back (a JSON round trip: a Date becomes its ISO string). */
  data: unknown;
  metadata: Record<string, unknown>;
  dataJson: string;
  metadataJson: string;
}

/**
 * Validates events before they reach a backend, filling in ids. Every backend stores JSON, so
 * data goes through one JSON round trip here: what the memory store keeps is exactly what SQLite
 * and PostgreSQL would give back, and data JSON cannot hold (BigInt, circular references) is a
 * TRELLIS_E_EVENT_INVALID on every backend instead of a driver's raw TypeError.
 */
export function prepareEvents(streamId: string, events: NewEvent[]): PreparedEvent[] {
  if (typeof streamId !== 'string' || streamId.length === 0) {
    throw new TrellisError('TRELLIS_E_EVENT_INVALID', 'stream id must be a non-empty string');
  }
  if (!Array.isArray(events)) {
    throw new TrellisError('TRELLIS_E_EVENT_INVALID', `events for stream "${streamId}" must be an array`);
  }
  return events.map((e, i) => {
    if (!e || typeof e.type !== 'string' || e.type.length === 0) {
      throw new TrellisError('TRELLIS_E_EVENT_INVALID', `event ${i} for stream "${streamId}" has no type`);
    }
    const metadata = e.metadata ?? {};
    if (typeof metadata !== 'object' || Array.isArray(metadata)) {
      throw new TrellisError(
        'TRELLIS_E_EVENT_INVALID',
        `event ${i} (${e.type}) for stream "${streamId}": metadata must be an object`,
      );
    }
    const dataJson = toJson(e.data ?? null, `event ${i} (${e.type}) for stream "${streamId}": data`);
    const metadataJson = toJson(metadata, `event ${i} (${e.type}) for stream "${streamId}": metadata`);
    return {
      type: e.type,
      id: e.id ?? randomUUID(),
      data: JSON.parse(dataJson),
      metadata: JSON.parse(metadataJson),
      dataJson,
      metadataJson,
    };
  });
}

function toJson(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    // BigInt ("Do not know how to serialize a BigInt") and circular structures land here.
    throw new TrellisError(
      'TRELLIS_E_EVENT_INVALID',
      `${what} cannot be stored as JSON (${(err as Error).message}): use plain objects, arrays, strings, finite numbers, booleans and null`,
      { cause: err },
    );
  }
  // A function or a symbol at the top stringifies to undefined.
  if (text === undefined) {
    throw new TrellisError('TRELLIS_E_EVENT_INVALID', `${what} is not JSON data (${typeof value})`);
  }
  return text;
}

/** Checks `from`/`fromVersion` and `limit` of a read: whole numbers, limit >= 0 (omit it for no limit). */
export function checkReadOptions(options: { from?: number; fromVersion?: number; limit?: number }): void {
  for (const key of ['from', 'fromVersion', 'limit'] as const) {
    const v = options[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || (key === 'limit' && v < 0)) {
      throw new TrellisError(
        'TRELLIS_E_EVENT_INVALID',
        `${key} ${String(v)} is not valid: use a whole number${key === 'limit' ? ' >= 0, or leave limit out to read everything' : ''}`,
      );
    }
  }
}

/** Table names go into SQL text, so only plain identifiers are accepted. */
export function checkIdentifier(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,50}$/i.test(name)) {
    throw new TrellisError(
      'TRELLIS_E_STORE_URL_INVALID',
      `"${name}" is not a valid table name: use letters, digits and underscores (at most 51)`,
    );
  }
  return name;
}

export interface PollingSource {
  readAll(options: { from: number; limit: number }): Promise<RecordedEvent[]>;
  /**
   * Resolves when new events may be there (a wake-up or the polling interval); at once if the
   * change generation moved past `since` (taken before the last read, so no wake-up is lost).
   */
  waitForChange(signal?: AbortSignal, since?: number): Promise<void>;
  /** The wake-up generation (Notifier.generation), when the source has one. */
  changeGeneration?(): number;
}

/**
 * Catch up page by page from `from`, yield 'caught-up' once, then keep reading after each
 * wake-up. Every backend shares this loop so they all keep the same promise; the position is
 * the only cursor, which is safe because each backend makes positions visible in order.
 */
export async function* pollSubscription(
  source: PollingSource,
  options: { from?: number; signal?: AbortSignal; batchSize?: number } = {},
): AsyncGenerator<SubscriptionItem> {
  const batch = options.batchSize ?? 500;
  const { signal } = options;
  let position = options.from ?? 0;
  let caughtUp = false;
  while (!signal?.aborted) {
    const generation = source.changeGeneration?.();
    const events = await source.readAll({ from: position, limit: batch });
    for (const event of events) {
      if (signal?.aborted) return;
      position = event.position;
      yield { kind: 'event', event };
    }
    if (events.length < batch) {
      if (!caughtUp) {
        caughtUp = true;
        yield { kind: 'caught-up', position };
      }
      if (signal?.aborted) return;
      await source.waitForChange(signal, generation);
    }
  }
}

/** A FeatureList from the supported features and the reasons for the rest. */
export function features<F extends string>(supports: F[], lacks: Partial<Record<F, string>> = {}) {
  return { supports: new Set<F>(supports), lacks };
}

/** What the SQLite and PostgreSQL stores both offer: everything. */
export const DATABASE_FEATURES = features<'durable' | 'multiProcess' | 'inlineProjections'>([
  'durable',
  'multiProcess',
  'inlineProjections',
]);
