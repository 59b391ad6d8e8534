/**
 * A concurrency cap with a bounded FIFO queue: `maxConcurrent` calls in flight, `maxQueue`
 * waiting, the rest refused at once. Cockatiel's `BulkheadPolicy` does the same around a
 * function returning a promise; a streaming exchange ends in a callback (`hooks.done`), so this
 * one is entered and released by hand and costs a call neither a promise nor a closure.
 */
export class Bulkhead {
  private active = 0;
  private readonly queue: Waiter[] = [];

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueue: number,
  ) {}

  /** Takes a slot if one is free; the caller must `release()` it once. */
  tryEnter(): boolean {
    if (this.active >= this.maxConcurrent) return false;
    this.active++;
    return true;
  }

  /** Queues `start` for the next free slot; undefined when the queue is full (refuse the call). */
  enqueue(start: () => void): Waiter | undefined {
    if (this.queue.length >= this.maxQueue) return undefined;
    const waiter = { start };
    this.queue.push(waiter);
    return waiter;
  }

  /** Takes a waiter that gave up (deadline, client gone) off the queue; false if it started. */
  cancel(waiter: Waiter): boolean {
    const i = this.queue.indexOf(waiter);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }

  /** Frees a slot: the first waiter takes it over. */
  release(): void {
    const next = this.queue.shift();
    if (next === undefined) {
      this.active--;
      return;
    }
    // Started on its own tick: release runs inside the finished exchange's callbacks.
    queueMicrotask(next.start);
  }
}

/** A call waiting for a slot. */
export interface Waiter {
  readonly start: () => void;
}
