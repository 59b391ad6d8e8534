/**
 * The `Request` a fetch-style workload receives: its `signal` aborts when the host gives the
 * request up (the client went away, a timeout), so a handler waiting on it, or a fetch it passed
 * it to, stops. The signal is made on first read: an `AbortController` passed to `new Request`
 * costs about as much as the Request itself (undici ties the two with a WeakRef and a
 * FinalizationRegistry), and most handlers never look at it.
 *
 * What reads the Request's internal signal instead of the `signal` property does not see the
 * abort: `request.clone()`, `new Request(request)`, `fetch(request)` (pass
 * `{ signal: request.signal }` to forward it).
 */

/** Marks the request as given up: its signal (made now or later) is aborted. */
export const ABANDON = Symbol('trellis.host.abandon');

export class HostedRequest extends Request {
  #controller: AbortController | undefined;
  #reason: unknown;

  static {
    // An accessor in place of the prototype's (the DOM typings declare `signal` a property).
    Object.defineProperty(HostedRequest.prototype, 'signal', {
      configurable: true,
      enumerable: true,
      get(this: HostedRequest): AbortSignal {
        if (this.#controller === undefined) {
          this.#controller = new AbortController();
          if (this.#reason !== undefined) this.#controller.abort(this.#reason);
        }
        return this.#controller.signal;
      },
    });
  }

  [ABANDON](): void {
    if (this.#reason !== undefined) return;
    this.#reason = new DOMException(
      'the host gave the request up (the client went away, or it timed out)',
      'AbortError',
    );
    this.#controller?.abort(this.#reason);
  }
}
