import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../core/logger.js';
import { openKeyValueStore } from '../../../stores/kv/index.js';
import { MemoryKeyValueStore } from '../../../stores/kv/memory.js';
import type { KeyValueStore, KvChange, KvWatchOptions } from '../../../stores/types.js';
import { waitFor } from '../testing.js';
import { registryConformance } from './conformance.js';
import { registerService } from './register.js';
import { RegistryDiscovery } from './registry.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-registry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

registryConformance('memory', async () => new MemoryKeyValueStore());
registryConformance('sqlite', () => openKeyValueStore(`sqlite:${join(dir, 'registry.db')}`));

/**
 * A real in-memory store whose list and watch fail while `down` is set, the way a store behind a
 * broken network does (the server keeps its data and the writers' refreshes stop arriving).
 */
class FlakyStore extends MemoryKeyValueStore {
  down = false;
  override async list(prefix: string) {
    if (this.down) throw new Error('connection refused');
    return super.list(prefix);
  }
  override watch(prefix: string, options: KvWatchOptions = {}): AsyncIterable<KvChange> {
    const inner = super.watch(prefix, options);
    const store = this;
    return {
      async *[Symbol.asyncIterator]() {
        for await (const change of inner) {
          if (store.down) throw new Error('connection reset');
          yield change;
        }
      },
    };
  }
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

describe('RegistryDiscovery when the store fails', () => {
  it('keeps the last known set (nothing lapses while it cannot hear refreshes) and catches up after', async () => {
    const store = new FlakyStore();
    const prefix = 'services/payments/';
    let failures = 0;
    const urls: string[][] = [];
    const source = new RegistryDiscovery({ store: 'flaky', prefix }, async () => store as KeyValueStore, {
      logger: silentLogger(),
      onFailure: () => failures++,
    });
    cleanup.push(() => source.close());
    source.start((s) => urls.push(s.map((u) => u.url)));
    const a = await registerService(store, { prefix, url: 'http://10.0.0.1:1', ttl: 300 });
    cleanup.push(() => a.close());
    await waitFor(() => urls.at(-1)?.length === 1, 5_000, 'a registered');
    store.down = true;
    // The next change (a's own refresh) breaks the watch; listing again fails while down.
    await waitFor(() => failures >= 2, 5_000, 'failures while down');
    await new Promise((r) => setTimeout(r, 700)); // more than a's ttl
    expect(urls.at(-1)).toEqual(['http://10.0.0.1:1']);
    expect(urls.every((u) => u.length > 0)).toBe(true);
    expect(source.status()).toMatchObject({ upstreams: 1, lastError: expect.stringMatching(/connection/) });
    const b = await registerService(store, { prefix, url: 'http://10.0.0.2:1', ttl: 300 });
    cleanup.push(() => b.close());
    store.down = false;
    await waitFor(() => urls.at(-1)?.length === 2, 10_000, 'caught up');
    expect(source.status()).toMatchObject({ failures: 0, upstreams: 2 });
  });
});
