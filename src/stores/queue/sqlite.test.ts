import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { messageQueueConformance, waitFor } from './conformance.js';
import { openMessageQueue } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-queue-'));
let n = 0;

messageQueueConformance({
  name: 'sqlite',
  // A fresh file per test; the queue inside a test is reopened on the same file.
  url: () => `sqlite:${join(dir, `q${n++}.db`)}`,
  cleanup: async () => rmSync(dir, { recursive: true, force: true }),
});

describe('sqlite queue retention', () => {
  it('trims what every group has consumed and keeps topics nobody consumes', async () => {
    const own = mkdtempSync(join(tmpdir(), 'trellis-queue-'));
    const path = join(own, 'retention.db');
    const queue = await openMessageQueue(`sqlite:${path}?sweep=50ms`);
    const count = (topic: string) =>
      (queue as unknown as { db: { prepare(s: string): { get(t: string): { n: number } } } }).db
        .prepare('SELECT COUNT(*) AS n FROM trellis_queue_message WHERE topic = ?')
        .get(topic).n;
    try {
      for (let i = 0; i < 10; i++) {
        await queue.publish('consumed', String(i));
        await queue.publish('unread', String(i));
      }
      const got: string[] = [];
      const c = await queue.consume('consumed', 'g', async (d) => {
        got.push(d.payload);
      });
      await waitFor(() => got.length === 10 && count('consumed') === 0, 'the consumed topic to be trimmed');
      expect(count('unread')).toBe(10);
      // Trimming never skips what comes next.
      await queue.publish('consumed', 'after');
      await waitFor(() => got.includes('after'), 'the next message');
      await c.stop();
    } finally {
      await queue.close();
      rmSync(own, { recursive: true, force: true });
    }
  });
});
