import { describe, expect, it } from 'vitest';
import { eventStoreConformance } from './conformance.js';
import { openEventStore } from './index.js';
import { MemoryEventStore } from './memory.js';

eventStoreConformance('memory', async () => {
  const store = new MemoryEventStore();
  return async () => store;
});

describe('openEventStore', () => {
  it('opens memory and names what is wrong with a bad URL', async () => {
    const store = await openEventStore('memory:');
    expect(store.backend).toBe('memory');
    expect(store.features.lacks.durable).toContain('lost');
    await expect(openEventStore('redis://x')).rejects.toMatchObject({ code: 'TRELLIS_E_STORE_UNSUPPORTED' });
    await expect(openEventStore('nonsense')).rejects.toMatchObject({ code: 'TRELLIS_E_STORE_URL_INVALID' });
    await store.close();
  });
});
