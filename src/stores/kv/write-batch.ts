/**
 * Group commit for one store's writes. Every write backend assigns revisions one writer at a
 * time (a counter row lock, BEGIN IMMEDIATE, a Lua script) so that revisions become visible in
 * order; that serialisation is what makes a watch from revision R exact. Paying it once per
 * write costs a commit (and, on PostgreSQL, a round trip) each. Instead, writes that arrive while
 * a batch is being written wait, and go together as the next batch: one transaction, revisions
 * still assigned in call order, each write's compare-and-set still checked on its own. A lone
 * writer is not delayed beyond one event-loop turn. No library does this for our transaction
 * shapes (DataLoader batches reads and has no in-flight gate), hence this small class.
 */

/** One queued write, with how to settle its caller's promise. */
interface Pending<Op, R> {
  op: Op;
  bytes: number;
  resolve: (r: R) => void;
  reject: (err: unknown) => void;
}

/** Bounds one batch so a transaction stays short. */
export interface WriteBatchLimits {
  /** Most writes in one batch. */
  maxOps: number;
  /** Most value bytes in one batch (a single larger write still goes alone). */
  maxBytes: number;
}

const DEFAULT_LIMITS: WriteBatchLimits = { maxOps: 128, maxBytes: 4 * 1024 * 1024 };

/**
 * When a batch starts once nothing is in flight: 'microtask' (a lone writer waits for nothing;
 * concurrent writers still gather while the previous batch is in flight, which suits network
 * engines) or 'immediate' (one event-loop turn, so callers woken by the same I/O join the batch:
 * suits a synchronous engine like SQLite, where no batch is ever "in flight" to gather behind).
 */
export type WriteBatchStart = 'microtask' | 'immediate';

/**
 * Queues writes and hands them to `write` in batches, one batch at a time, in call order.
 * `write` returns one outcome per op: a result, or an Error for that op alone (a failed
 * compare-and-set); if `write` itself throws, every op of the batch fails with that error.
 */
export class WriteBatcher<Op, R> {
  #queue: Pending<Op, R>[] = [];
  #busy = false;
  #scheduled = false;
  #idle: (() => void)[] = [];

  constructor(
    private readonly write: (ops: Op[]) => Promise<(R | Error)[]> | (R | Error)[],
    private readonly start: WriteBatchStart = 'microtask',
    private readonly limits: WriteBatchLimits = DEFAULT_LIMITS,
  ) {}

  /** Queues `op`; resolves with its outcome once its batch has committed. */
  submit(op: Op, bytes = 0): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ op, bytes, resolve, reject });
      this.#schedule();
    });
  }

  /** Writes everything queued now, synchronously when `write` is synchronous (used on close). */
  drain(): void {
    while (this.#queue.length > 0 && !this.#busy) this.#flush();
  }

  /** Resolves once every write queued so far has been written (or has failed). */
  idle(): Promise<void> {
    if (this.#queue.length === 0 && !this.#busy) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #schedule(): void {
    if (this.#scheduled || this.#busy) return;
    this.#scheduled = true;
    const run = () => {
      this.#scheduled = false;
      this.#flush();
    };
    if (this.start === 'immediate') setImmediate(run);
    else queueMicrotask(run);
  }

  /** Writes the next batch; settles synchronously when `write` is synchronous (SQLite). */
  #flush(): void {
    if (this.#busy || this.#queue.length === 0) return;
    const batch = this.#take();
    this.#busy = true;
    const done = (outcomes: (R | Error)[] | undefined, err?: unknown) => {
      this.#busy = false;
      batch.forEach((p, i) => {
        const o = outcomes?.[i];
        if (outcomes === undefined) p.reject(err);
        else if (o instanceof Error) p.reject(o);
        else p.resolve(o as R);
      });
      if (this.#queue.length > 0) this.#schedule();
      else for (const wake of this.#idle.splice(0)) wake();
    };
    let out: Promise<(R | Error)[]> | (R | Error)[];
    try {
      out = this.write(batch.map((p) => p.op));
    } catch (err) {
      done(undefined, err);
      return;
    }
    if (Array.isArray(out)) done(out);
    else out.then(done, (err: unknown) => done(undefined, err));
  }

  #take(): Pending<Op, R>[] {
    let n = 0;
    let bytes = 0;
    while (n < this.#queue.length && n < this.limits.maxOps) {
      const next = this.#queue[n]!.bytes;
      if (n > 0 && bytes + next > this.limits.maxBytes) break;
      bytes += next;
      n++;
    }
    return this.#queue.splice(0, n);
  }
}
