import type { MessagePort } from 'node:worker_threads';
import { Dispatcher } from 'undici';
import { Batcher, type FromChannel, type ToChannel, tight, WINDOW } from './channel-protocol.js';

/**
 * The host's side of an http workload's request channel: an undici `Dispatcher` that carries
 * each request to a worker thread over a MessagePort (method, path, headers, body chunks) and
 * streams the answer back, instead of a loopback HTTP connection. The gateway runtime's service
 * pool uses it as the upstream's dispatcher, so the forwarding exchange (retries, timeouts,
 * outlier feedback, streaming with backpressure, the generation swap) is the same as for any
 * origin; what goes away is a second HTTP serialisation, parse and two socket writes per request
 * on the one core the host and its workers share.
 *
 * Flow control is a byte window each way: a side sends at most `WINDOW` bytes of body that the
 * other has not yet acknowledged (`k` messages), so a slow client pauses the worker's response
 * body and a slow workload pauses the client's request body, as a socket's buffers would. Either
 * side posts its messages in batches, one per turn of its event loop (`Batcher`).
 */

type LegacyHandler = Dispatcher.DispatchHandler;

class ChannelError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function onHeadersTimeout(p: Pending): void {
  p.owner.timedOut(p);
}

/** One request on the channel. */
class Pending {
  headersTimer: NodeJS.Timeout | undefined;
  /** Response bytes passed on but not yet acknowledged (acks are batched). */
  unacked = 0;
  paused = false;
  done = false;
  body: NodeJS.ReadableStream | undefined;
  /** Request body bytes sent, not yet acknowledged by the worker. */
  inWorker = 0;
  bodyPaused = false;

  constructor(
    readonly owner: ChannelDispatcher,
    readonly id: number,
    readonly handler: LegacyHandler,
  ) {}
}

export class ChannelDispatcher extends Dispatcher {
  readonly #port: MessagePort;
  readonly #out: Batcher<ToChannel>;
  readonly #pending = new Map<number, Pending>();
  readonly #fallback: (() => Dispatcher) | undefined;
  #fallbackInstance: Dispatcher | undefined;
  #nextId = 1;
  #dead = false;
  #closing: (() => void)[] | undefined;

  /**
   * `port`: the host's end of the channel. `fallback`: a dispatcher for what the channel does not
   * carry (protocol upgrades, CONNECT): the worker's loopback listener.
   */
  constructor(port: MessagePort, fallback?: () => Dispatcher) {
    super();
    this.#port = port;
    this.#fallback = fallback;
    this.#out = new Batcher(port, () => this.#lost());
    port.on('message', (batch: FromChannel[]) => {
      for (const m of batch) this.#onMessage(m);
    });
    // The worker ended (its end of the channel closed): whatever it held fails as a reset.
    port.on('close', () => this.#lost());
  }

  /** Requests on the channel right now. */
  get inFlight(): number {
    return this.#pending.size;
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (opts.upgrade || opts.method === 'CONNECT') {
      if (this.#fallback) {
        this.#fallbackInstance ??= this.#fallback();
        return this.#fallbackInstance.dispatch(opts, handler);
      }
    }
    const id = this.#nextId++;
    const p = new Pending(this, id, handler);
    if (this.#dead || this.#closing) {
      // Like a listener that has closed: nothing was sent, so a retry elsewhere is safe.
      queueMicrotask(() => handler.onError?.(new ChannelError('ECONNREFUSED', 'the workload is gone')));
      return true;
    }
    this.#pending.set(id, p);
    handler.onConnect?.((err?: Error) => this.#abort(p, err));
    if (p.done) return true; // aborted in onConnect
    const body = opts.body;
    const streamed =
      body != null && typeof (body as NodeJS.ReadableStream).on === 'function'
        ? (body as NodeJS.ReadableStream)
        : undefined;
    const bytes =
      streamed === undefined && body != null
        ? typeof body === 'string'
          ? Buffer.from(body)
          : (body as Uint8Array)
        : undefined;
    this.#post({ t: 'q', id, m: opts.method, p: opts.path, h: flatHeaders(opts.headers), b: body != null });
    const headersTimeout = opts.headersTimeout ?? 0;
    if (headersTimeout > 0) p.headersTimer = setTimeout(onHeadersTimeout, headersTimeout, p);
    if (bytes !== undefined) {
      if (bytes.byteLength > 0) this.#post({ t: 'd', id, c: tight(bytes) });
      this.#post({ t: 'e', id });
    } else if (streamed !== undefined) this.#sendBody(p, streamed);
    return true;
  }

  #sendBody(p: Pending, body: NodeJS.ReadableStream): void {
    p.body = body;
    const onData = (chunk: Buffer | string) => {
      if (p.done) return;
      const c = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      p.inWorker += c.byteLength;
      this.#post({ t: 'd', id: p.id, c: tight(c) });
      if (p.inWorker > WINDOW && !p.bodyPaused) {
        p.bodyPaused = true;
        body.pause();
      }
    };
    const onEnd = () => {
      cleanup();
      if (!p.done) this.#post({ t: 'e', id: p.id });
    };
    const onError = (err: Error) => {
      cleanup();
      this.#abort(p, err);
    };
    const cleanup = () => {
      body.removeListener('data', onData);
      body.removeListener('end', onEnd);
      body.removeListener('error', onError);
    };
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.resume();
  }

  #post(m: ToChannel): void {
    if (!this.#dead) this.#out.post(m);
  }

  #onMessage(m: FromChannel): void {
    const p = this.#pending.get(m.id);
    if (p === undefined || p.done) return;
    switch (m.t) {
      case 'h': {
        if (p.headersTimer !== undefined) clearTimeout(p.headersTimer);
        p.headersTimer = undefined;
        const resume = () => this.#resume(p);
        p.handler.onHeaders?.(m.s, m.h as unknown as Buffer[], resume, m.st);
        if (p.done) return;
        if (m.c !== undefined) this.#data(p, m.c);
        if (m.e === true && !p.done) this.#complete(p);
        return;
      }
      case 'd':
        this.#data(p, m.c);
        return;
      case 'e':
        this.#complete(p);
        return;
      case 'x':
        this.#fail(p, new ChannelError(m.code, m.msg));
        return;
      case 'k':
        p.inWorker -= m.n;
        if (p.bodyPaused && p.inWorker <= WINDOW / 2) {
          p.bodyPaused = false;
          p.body?.resume();
        }
        return;
    }
  }

  #data(p: Pending, chunk: Uint8Array): void {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const more = p.handler.onData?.(buf) !== false;
    if (!more) {
      // Held back by the client: the worker stops at the window until resume() acknowledges.
      p.paused = true;
      p.unacked += buf.byteLength;
      return;
    }
    p.unacked += buf.byteLength;
    // Acknowledged in batches: one message per half window, not one per chunk.
    if (p.unacked >= WINDOW / 2) this.#ack(p);
  }

  #resume(p: Pending): void {
    if (p.done || !p.paused) return;
    p.paused = false;
    this.#ack(p);
  }

  #ack(p: Pending): void {
    const n = p.unacked;
    p.unacked = 0;
    if (n > 0) this.#post({ t: 'k', id: p.id, n });
  }

  #settle(p: Pending): void {
    p.done = true;
    if (p.headersTimer !== undefined) clearTimeout(p.headersTimer);
    this.#pending.delete(p.id);
    if (this.#closing && this.#pending.size === 0) for (const fn of this.#closing.splice(0)) fn();
  }

  #complete(p: Pending): void {
    this.#settle(p);
    p.handler.onComplete?.([]);
  }

  #fail(p: Pending, err: Error): void {
    this.#settle(p);
    p.handler.onError?.(err);
  }

  #abort(p: Pending, err?: Error): void {
    if (p.done) return;
    this.#post({ t: 'x', id: p.id });
    this.#fail(p, err ?? new ChannelError('UND_ERR_ABORTED', 'request aborted'));
  }

  timedOut(p: Pending): void {
    if (p.done) return;
    p.headersTimer = undefined;
    this.#post({ t: 'x', id: p.id });
    this.#fail(p, new ChannelError('UND_ERR_HEADERS_TIMEOUT', 'no response headers in time'));
  }

  /** The worker ended: fail what it held, refuse what comes. */
  ended(): void {
    this.#lost();
    this.#port.close();
  }

  #lost(): void {
    if (this.#dead) return;
    this.#dead = true;
    for (const p of [...this.#pending.values()])
      this.#fail(p, new ChannelError('UND_ERR_SOCKET', 'the workload ended before it answered'));
  }

  /** Resolves once the requests on the channel have finished; takes no new ones. */
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const done = (async () => {
      if (this.#pending.size > 0) {
        this.#closing ??= [];
        await new Promise<void>((resolve) => this.#closing!.push(resolve));
      }
      this.#closing ??= [];
      await this.#fallbackInstance?.close();
    })();
    if (callback) {
      void done.then(callback);
      return;
    }
    return done;
  }

  /** Fails the requests on the channel now. */
  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: unknown, b?: unknown): Promise<void> | void {
    const err = a instanceof Error ? a : new ChannelError('UND_ERR_DESTROYED', 'dispatcher destroyed');
    const callback = (typeof a === 'function' ? a : b) as (() => void) | undefined;
    for (const p of [...this.#pending.values()]) this.#abort(p, err);
    this.#closing ??= [];
    const done = this.#fallbackInstance?.destroy() ?? Promise.resolve();
    if (callback) {
      void done.then(callback);
      return;
    }
    return done;
  }
}

/** undici accepts headers as a flat list, a record or an iterable of pairs: the channel carries a flat list. */
function flatHeaders(h: Dispatcher.DispatchOptions['headers']): string[] {
  if (h == null) return [];
  if (Array.isArray(h)) {
    if (h.length === 0 || typeof h[0] === 'string') return h as string[];
    return (h as unknown as [string, string][]).flat();
  }
  const out: string[] = [];
  if (typeof (h as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of h as Iterable<[string, string]>) out.push(k, String(v));
    return out;
  }
  for (const [k, v] of Object.entries(h as Record<string, string | string[] | undefined>)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push(k, x);
    else out.push(k, String(v));
  }
  return out;
}
