import { kvConformance } from './conformance.js';
import { MemoryKeyValueStore } from './memory.js';

kvConformance('memory', async () => new MemoryKeyValueStore(), {
  gap: { open: async () => new MemoryKeyValueStore({ retainChanges: 50 }) },
});
