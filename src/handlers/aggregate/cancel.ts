import { EventEmitter } from 'node:events';

/**
 * A part's cancellation: its deadline passed, the client left, or a required sibling failed.
 * undici accepts an EventEmitter with `aborted`/`reason` as a request signal; this one is used
 * instead of an AbortController because EventTarget listeners cost several times more than
 * EventEmitter ones, and every part of every request pays for them on the hot path.
 */
export class Cancel extends EventEmitter {
  aborted = false;
  reason: unknown;

  constructor() {
    super();
    // A fan-out has one listener per call in flight; `concurrency` bounds them, not 10.
    this.setMaxListeners(0);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.emit('abort');
  }

  /** Waits `ms`, or less when cancelled first; true when the wait was cut short. */
  wait(ms: number): Promise<boolean> {
    if (this.aborted) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.off('abort', done);
        resolve(false);
      }, ms);
      this.once('abort', done);
    });
  }
}
