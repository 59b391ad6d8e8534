/**
 * Wakes waiting readers when something changed. A reader also wakes after `ms` (the polling
 * fallback for writers in other processes, which cannot call notify here) or when its signal
 * aborts.
 *
 * A reader reads, then waits. A notify() that lands while the read is in flight would be lost if
 * wait() only listened from the moment it is called, and the reader would sleep a whole poll
 * interval on a change it has not seen. So every notify() bumps a generation: a reader takes the
 * generation before it reads and passes it to wait(), which returns at once if it has moved.
 */
export class Notifier {
  #waiters = new Set<() => void>();
  #generation = 0;

  /** Changes so far; take it before a read, pass it to wait() after. */
  get generation(): number {
    return this.#generation;
  }

  /** Wakes every current waiter. */
  notify(): void {
    this.#generation++;
    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const w of waiters) w();
  }

  /**
   * Resolves on the next notify(), after `ms`, or when `signal` aborts, whichever is first; at
   * once if a notify() came after the generation `since` was taken.
   */
  wait(ms: number, signal?: AbortSignal, since?: number): Promise<void> {
    if (signal?.aborted || (since !== undefined && since !== this.#generation)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      this.#waiters.add(done);
    });
  }
}
