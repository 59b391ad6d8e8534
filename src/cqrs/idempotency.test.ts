import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { openKeyValueStore } from '../stores/kv/index.js';
import type { KeyValueStore } from '../stores/types.js';
import { kvIdempotencyCases, memoryIdempotencyCases } from './testing/idempotency-cases.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-idem-'));
const opened: KeyValueStore[] = [];
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

memoryIdempotencyCases();
kvIdempotencyCases('sqlite', () => openKeyValueStore(`sqlite:${join(dir, 'idem.db')}`), opened);
