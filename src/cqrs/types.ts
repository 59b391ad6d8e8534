import type { RecordedEvent } from '../stores/types.js';

/** An event as the domain sees it: a type and its data (metadata optional). */
export interface DomainEvent<T extends string = string, D = unknown> {
  type: T;
  data: D;
  metadata?: Record<string, unknown>;
}

/**
 * A decider (Chassaing's pattern, as in Emmett): pure functions that decide which events a
 * command causes and fold events into state. Keep them free of I/O so they test as given/when/then.
 */
export interface Decider<C, S, E extends DomainEvent = DomainEvent> {
  /** The state of a stream with no events. */
  initialState: () => S;
  /** The events this command causes in this state; throw `rejectCommand(...)` to refuse it. */
  decide(command: C, state: S): E | E[] | Promise<E | E[]>;
  /** The state after one more event. */
  evolve(state: S, event: E): S;
  /** Bump when the state's shape changes: snapshots taken by another version are ignored. */
  version?: number;
}

/** Migrates one stored event schema version to the next when events are read (never rewrites). */
export interface Upcaster {
  /** The stored event type this applies to. */
  type: string;
  /** The schema version it upgrades from (`metadata.schemaVersion`, 1 when absent). */
  fromVersion: number;
  /** The upgraded data; the event then carries schemaVersion fromVersion + 1. */
  up(data: unknown, event: RecordedEvent): unknown;
  /** A new type name, when the upgrade renames the event. */
  toType?: string;
}

export type { RecordedEvent };
