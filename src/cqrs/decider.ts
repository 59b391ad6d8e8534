import { isTrellisError } from '../core/errors.js';
import type { EventStore, InlineHandler, RecordedEvent } from '../stores/types.js';
import type { SnapshotStore } from './snapshots.js';
import type { Decider, DomainEvent, Upcaster } from './types.js';
import { upcast } from './upcast.js';

export interface HandleCommandOptions {
  /** How many times to re-read and decide again after a version conflict (default 5). */
  maxRetries?: number;
  /** Metadata stored with every event (correlation id, user, …). */
  metadata?: Record<string, unknown>;
  /** Upcasters applied to events read from the stream. */
  upcasters?: readonly Upcaster[];
  /** Take a snapshot every `every` events; load it before reading the rest of the stream. */
  snapshots?: { store: SnapshotStore; every: number };
  /** Inline projections updated in the append transaction. */
  inline?: InlineHandler[];
}

export interface CommandResult<S, E> {
  /** The events the command appended (empty when the decider decided nothing). */
  events: E[];
  state: S;
  /** Stream version after the append. */
  nextVersion: number;
  /** Global position of the last appended event (wait for it with waitForPosition). */
  position: number;
  /** How many version conflicts were retried. */
  retries: number;
}

/** Folds a stream (after upcasting) into state, starting from a snapshot when one fits. */
export async function aggregateStream<S, E extends DomainEvent>(
  store: EventStore,
  streamId: string,
  decider: Decider<unknown, S, E>,
  options: Pick<HandleCommandOptions, 'upcasters' | 'snapshots'> = {},
): Promise<{ state: S; version: number; snapshotVersion: number }> {
  let state = decider.initialState();
  let version = 0;
  const snap = options.snapshots ? await options.snapshots.store.load(streamId) : undefined;
  // A snapshot made by another decider version may not match today's state shape: ignore it.
  if (snap && snap.deciderVersion === (decider.version ?? 1)) {
    state = snap.state as S;
    version = snap.version;
  }
  const snapshotVersion = version;
  const events = await store.readStream(streamId, { fromVersion: version + 1 });
  for (const raw of events) {
    state = decider.evolve(state, toDomain(upcast(raw, options.upcasters)) as E);
    version = raw.version;
  }
  return { state, version, snapshotVersion };
}

function toDomain(e: RecordedEvent): DomainEvent {
  return { type: e.type, data: e.data, metadata: e.metadata };
}

/**
 * Reads the stream, decides, and appends with the version it read. On a concurrency conflict
 * it re-reads and decides again, up to `maxRetries` times, so two senders never overwrite
 * each other's changes (no lost update); a conflict that survives the retries is thrown.
 */
export async function handleCommand<C, S, E extends DomainEvent>(
  store: EventStore,
  streamId: string,
  command: C,
  decider: Decider<C, S, E>,
  options: HandleCommandOptions = {},
): Promise<CommandResult<S, E>> {
  const maxRetries = options.maxRetries ?? 5;
  for (let attempt = 0; ; attempt++) {
    const { state, version, snapshotVersion } = await aggregateStream(
      store,
      streamId,
      decider as Decider<unknown, S, E>,
      options,
    );
    const decided = await decider.decide(command, state);
    const events = Array.isArray(decided) ? decided : [decided];
    if (events.length === 0) {
      return { events: [], state, nextVersion: version, position: 0, retries: attempt };
    }
    try {
      const result = await store.append(
        streamId,
        events.map((e) => ({
          type: e.type,
          data: e.data,
          metadata: { ...options.metadata, ...e.metadata },
        })),
        { expectedVersion: version, ...(options.inline ? { inline: options.inline } : {}) },
      );
      const next = events.reduce(decider.evolve, state);
      const snaps = options.snapshots;
      if (snaps && Math.floor(result.nextVersion / snaps.every) > Math.floor(snapshotVersion / snaps.every)) {
        // A snapshot is an optimisation: failing to write one must not fail the command.
        await snaps.store
          .save(streamId, { state: next, version: result.nextVersion, deciderVersion: decider.version ?? 1 })
          .catch(() => {});
      }
      return {
        events,
        state: next,
        nextVersion: result.nextVersion,
        position: result.position,
        retries: attempt,
      };
    } catch (err) {
      if (!isTrellisError(err, 'TRELLIS_E_EVENT_VERSION_CONFLICT') || attempt >= maxRetries) throw err;
      // Jitter keeps twenty colliding senders from colliding again in lock step.
      await new Promise((r) => setTimeout(r, Math.random() * 2 * (attempt + 1)));
    }
  }
}
