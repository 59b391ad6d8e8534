import { describe, expect, it } from 'vitest';
import { MemoryKeyValueStore } from '../stores/kv/memory.js';
import type { WatchOptions } from './api.js';
import { ConfigRepository } from './repository.js';
import { type HubChange, WatchHub } from './watch-hub.js';

async function take(it: AsyncIterable<HubChange>, n: number): Promise<string[]> {
  const out: string[] = [];
  for await (const { change } of it) {
    out.push(`${change.revision}:${change.type}:${change.key}`);
    if (out.length === n) break;
  }
  return out;
}

describe('WatchHub', () => {
  it('serves many watchers from one store watch, each from its own revision and prefix', async () => {
    const repo = new ConfigRepository(new MemoryKeyValueStore());
    let storeWatches = 0;
    const counted = Object.create(repo) as ConfigRepository;
    counted.watch = (prefix: string, options?: WatchOptions) => {
      storeWatches++;
      return repo.watch(prefix, options);
    };
    const hub = new WatchHub(counted);
    const ac = new AbortController();
    const base = (await repo.set('a/x', 'v: 0')).revision;
    // A watcher that stays connected keeps the upstream watch (and its buffer) alive.
    const keeper = take(hub.watch('default', '', base, ac.signal), 1000);
    const first = take(hub.watch('default', '', base, ac.signal), 4);
    const onlyB = take(hub.watch('default', 'b/', base, ac.signal), 2);
    const r1 = await repo.set('a/x', 'v: 1');
    await repo.set('b/y', 'v: 1');
    await repo.set('a/x', 'v: 2');
    await repo.delete('b/y');
    expect(await first).toHaveLength(4);
    expect((await onlyB).map((s) => s.split(':').slice(1).join(':'))).toEqual(['put:b/y', 'delete:b/y']);
    // A late watcher resuming from a buffered revision is replayed from memory.
    const late = await take(hub.watch('default', 'a/', r1.revision, ac.signal), 1);
    expect(late[0]).toMatch(/:put:a\/x$/);
    expect(storeWatches).toBe(1);
    // One resuming from before the buffer gets its own store watch, with the same sequence.
    const old = await take(hub.watch('default', 'a/', base - 1, ac.signal), 2);
    expect(old.map((s) => s.split(':')[0])).toEqual([String(base), String(r1.revision)]);
    expect(storeWatches).toBe(2);
    ac.abort();
    expect(await keeper).toHaveLength(4);
    hub.close();
  });
});
