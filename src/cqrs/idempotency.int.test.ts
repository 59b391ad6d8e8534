import { afterAll } from 'vitest';
import { openKeyValueStore } from '../stores/kv/index.js';
import type { KeyValueStore } from '../stores/types.js';
import { serviceUrl } from '../testing/services.js';
import { kvIdempotencyCases } from './testing/idempotency-cases.js';

// Idempotency records shared across instances through the real engines.
const opened: KeyValueStore[] = [];
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
});
for (const service of ['postgres', 'redis', 'etcd'] as const) {
  const url = await serviceUrl(service);
  if (url) kvIdempotencyCases(service, () => openKeyValueStore(url), opened);
}
