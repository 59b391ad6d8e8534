import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { messageQueueConformance } from './conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-queue-'));
let n = 0;

messageQueueConformance({
  name: 'sqlite',
  // A fresh file per test; the queue inside a test is reopened on the same file.
  url: () => `sqlite:${join(dir, `q${n++}.db`)}`,
  cleanup: async () => rmSync(dir, { recursive: true, force: true }),
});
