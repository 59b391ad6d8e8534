import { describe, expect, it } from 'vitest';
import { Notifier } from './notifier.js';

describe('Notifier', () => {
  it('wakes a waiter on notify', async () => {
    const n = new Notifier();
    const started = Date.now();
    const waiting = n.wait(10_000);
    n.notify();
    await waiting;
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('does not lose a notify that landed between the read and the wait', async () => {
    const n = new Notifier();
    const before = n.generation; // a reader takes this, then reads…
    n.notify(); // …a write lands while the read is in flight…
    const started = Date.now();
    await n.wait(10_000, undefined, before); // …and the wait returns at once.
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('falls back to the poll interval and honours abort', async () => {
    const n = new Notifier();
    await n.wait(5);
    const ac = new AbortController();
    const waiting = n.wait(10_000, ac.signal);
    ac.abort();
    await waiting;
  });
});
