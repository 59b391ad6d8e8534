export * from './connection.js';
export * from './events/index.js';
export * from './kv/index.js';
export * from './lease/index.js';
export * from './queue/index.js';
export * from './types.js';
// Each building block adds its opening function here: openKeyValueStore, openLeaseStore,
// openEventStore, openMessageQueue (see docs/stores.md).
