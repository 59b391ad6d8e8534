import type { RecordedEvent } from '../stores/types.js';
import type { Upcaster } from './types.js';

/** The schema version an event was written with (`metadata.schemaVersion`, default 1). */
export function schemaVersionOf(event: RecordedEvent): number {
  const v = event.metadata?.schemaVersion;
  return typeof v === 'number' ? v : 1;
}

/**
 * Applies every matching upcaster in turn, so a v1 event read today arrives in the newest shape.
 * The stored event is never changed: upcasting happens on each read.
 */
export function upcast(event: RecordedEvent, upcasters: readonly Upcaster[] = []): RecordedEvent {
  if (upcasters.length === 0) return event;
  let current = event;
  for (let guard = 0; guard < 100; guard++) {
    const version = schemaVersionOf(current);
    const u = upcasters.find((x) => x.type === current.type && x.fromVersion === version);
    if (!u) return current;
    current = {
      ...current,
      type: u.toType ?? current.type,
      data: u.up(current.data, current),
      metadata: { ...current.metadata, schemaVersion: version + 1 },
    };
  }
  return current;
}
