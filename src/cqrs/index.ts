/** `trellis/cqrs`: deciders, command and query buses, projections, snapshots, upcasters. */

export { openEventStore } from '../stores/events/index.js';
export type { AppendTransaction, EventStore, InlineHandler } from '../stores/events/types.js';
export * from './bus.js';
export * from './decider.js';
export * from './errors.js';
export * from './given.js';
export * from './http.js';
export * from './idempotency.js';
export { projectionsPanel } from './panel.js';
export * from './projection.js';
export * from './snapshots.js';
export { sql } from './sql.js';
export * from './types.js';
export * from './upcast.js';
export * from './wait.js';
