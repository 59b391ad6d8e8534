/**
 * The shadow side's budget: at most `concurrency` copies in flight and `queue` waiting. A copy
 * that finds both full is dropped (and counted) at once, so shadow traffic can never pile up
 * memory or sockets behind a slow or dead modern side, and the primary never waits for a slot.
 */
export class ShadowQueue {
  #running = 0;
  readonly #waiting: Array<() => void> = [];
  /** Copies refused because the queue was full, since start. */
  dropped = 0;

  constructor(
    readonly concurrency: number,
    readonly queue: number,
  ) {}

  /** Copies in flight and waiting now. */
  get load(): { running: number; waiting: number } {
    return { running: this.#running, waiting: this.#waiting.length };
  }

  /**
   * Reserves a place for one copy: a `start` to await (resolves when a slot is free) and a
   * `done` to call when the copy ends, or undefined (counted as dropped) when full.
   */
  reserve(): { start: Promise<void>; done: () => void } | undefined {
    if (this.#running < this.concurrency) {
      this.#running++;
      const slot = { running: true, released: false };
      return { start: Promise.resolve(), done: () => this.#release(slot) };
    }
    if (this.#waiting.length >= this.queue) {
      this.dropped++;
      return undefined;
    }
    const slot = { running: false, released: false };
    let wake!: () => void;
    const start = new Promise<void>((r) => {
      wake = () => {
        slot.running = true;
        r();
      };
    });
    this.#waiting.push(wake);
    return {
      start,
      done: () => {
        // Given up while still waiting: leave the line, free no slot.
        if (!slot.running && !slot.released) {
          slot.released = true;
          const i = this.#waiting.indexOf(wake);
          if (i !== -1) this.#waiting.splice(i, 1);
          return;
        }
        this.#release(slot);
      },
    };
  }

  #release(slot: { running: boolean; released: boolean }): void {
    if (slot.released) return;
    slot.released = true;
    const next = this.#waiting.shift();
    // The slot passes straight to the next waiter; otherwise it is freed.
    if (next) next();
    else this.#running--;
  }
}

/**
 * The comparisons waiting to run, off the request path: jobs are run in batches of `batch` per
 * turn of the event loop (one setImmediate per batch, not per comparison), so I/O gets its turn
 * between batches; at most `max` wait, beyond which a comparison is dropped and counted rather
 * than let a burst of copies pile up answers in memory.
 */
export class ComparisonQueue {
  readonly #pending: Array<() => void> = [];
  #scheduled = false;
  /** Comparisons dropped because `max` were waiting, since start. */
  dropped = 0;

  constructor(
    readonly max: number,
    readonly batch: number,
    private readonly onError: (err: unknown) => void,
    private readonly onDrop: () => void = () => {},
  ) {}

  get waiting(): number {
    return this.#pending.length;
  }

  /** Queues one comparison; false (dropped, counted) when full. */
  push(job: () => void): boolean {
    if (this.#pending.length >= this.max) {
      this.dropped++;
      this.onDrop();
      return false;
    }
    this.#pending.push(job);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#drain);
    }
    return true;
  }

  readonly #drain = (): void => {
    const n = Math.min(this.batch, this.#pending.length);
    const jobs = this.#pending.splice(0, n);
    for (const job of jobs) {
      try {
        job();
      } catch (err) {
        this.onError(err);
      }
    }
    if (this.#pending.length > 0) setImmediate(this.#drain);
    else this.#scheduled = false;
  };
}
