import type { IncomingHttpHeaders } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { type ExchangeSignal, exchange } from '../http/exchange/index.js';
import { upstreamRequestHeaders } from '../http/forward.js';
import type { ResponseFilter } from '../http/response.js';
import type { RequestContext } from '../http/types.js';
import type { ServicePool } from '../http/upstream/types.js';
import { type ComparisonCache, diffed } from './comparison-cache.js';
import {
  type Answer,
  type BodyDelta,
  bodyOf,
  compareAnswers,
  type Difference,
  type IgnoreRules,
} from './diff.js';

/**
 * One shadowed request: the primary answer streams to the client untouched (the `forward`
 * exchange, with a response filter that copies its status, headers and first
 * `maxResponseSize` bytes aside), while a copy goes to the other side through the buffered
 * exchange, with its own deadline, one attempt and a slot of the route's ShadowQueue. The
 * request body is teed: the primary reads the client's stream at its own pace and the copy
 * gets the same chunks, kept up to `maxBodySize` (a larger body drops the copy, never the
 * primary). Nothing here can delay or fail the primary: the copy's failures only end up in the
 * comparison's outcome.
 *
 * What runs on the client's path is kept to pushing chunk references: both answers are kept raw
 * (status, a few headers, the body bytes) and only decoded and parsed by the comparison, off the
 * request path, and not at all when both bodies are byte-equal.
 */

/** The other side's answer, or why there is none. */
export type CopyOutcome =
  | { ok: true; answer: RawAnswer; ms: number }
  | { ok: false; failure: string; status?: number; ms: number };

/**
 * An answer as it came (the kept headers, content-encoding included, and the body bytes):
 * decoded and parsed only by `compareRaw`, when the bytes of the two sides differ.
 */
export interface RawAnswer {
  status: number;
  headers: Record<string, string | undefined>;
  /** undefined: larger than shadow.maxResponseSize, not compared. */
  raw: Buffer | undefined;
}

export interface ShadowLimits {
  timeoutMs: number;
  maxBodySize: number;
  maxResponseSize: number;
}

/** Headers kept from each answer for the comparison and the report. */
const KEPT_HEADERS = ['content-type', 'content-encoding', 'cache-control', 'location', 'etag'];

/** Tees a request body: chunks up to `max` are kept for copies; resolves undefined past it or on abort. */
export function teeRequestBody(ctx: RequestContext, max: number): Promise<Buffer | undefined> {
  const req = ctx.req;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    // Paused first, so adding a 'data' listener does not start the flow before the primary's
    // exchange listens too: undici resumes the stream when it starts sending, and from then on
    // every chunk reaches both listeners, at the primary's pace (its backpressure pauses both).
    req.pause();
    const onData = (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
        req.off('data', onData);
        resolve(undefined);
      } else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.once('close', () => {
      if (!req.readableEnded) resolve(undefined);
    });
  });
}

/**
 * A response filter that copies the primary answer aside while it goes out unchanged. An
 * answer the gateway made itself (`answeredByGateway()` true at its end) resolves undefined:
 * there is no primary answer to compare.
 */
export function captureAnswer(
  maxSize: number,
  answeredByGateway?: () => boolean,
): {
  filter: ResponseFilter;
  answer: Promise<RawAnswer | undefined>;
  /** The response closed: resolves `answer` with undefined unless it already ended. */
  abandon: () => void;
} {
  let status = 0;
  let headers: Record<string, string | undefined> = {};
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  let settle!: (a: RawAnswer | undefined) => void;
  const answer = new Promise<RawAnswer | undefined>((r) => {
    settle = r;
  });
  const filter: ResponseFilter = {
    head(head) {
      status = head.statusCode;
      headers = {};
      for (const h of KEPT_HEADERS) {
        const v = head.getHeader(h);
        if (v !== undefined) headers[h] = Array.isArray(v) ? v.join(', ') : String(v);
      }
      return undefined;
    },
    write(chunk, out) {
      if (!over) {
        size += chunk.length;
        if (size > maxSize) {
          over = true;
          chunks.length = 0;
        } else chunks.push(chunk);
      }
      return out.write(chunk);
    },
    end(out) {
      out.end();
      if (answeredByGateway?.() === true) return settle(undefined);
      // Only references were kept on the way out; joining (and any decoding) waits for the comparison.
      settle({
        status,
        headers,
        raw: over ? undefined : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
      });
    },
  };
  return { filter, answer, abandon: () => settle(undefined) };
}

/** Stands for a body too large to compare: equal on both sides, so only status and headers count. */
const TOO_LARGE = '(body larger than shadow.maxResponseSize: not compared)';

/**
 * The copy's request line and headers, taken while the request is live (its socket, for the
 * forwarding headers, is gone once the primary has answered): marked `x-trellis-shadow: 1`, no
 * host (undici sends the chosen upstream's own).
 */
export function copyRequest(ctx: RequestContext, pool: ServicePool, target: string): CopyRequest {
  const headers = upstreamRequestHeaders(ctx, undefined);
  headers.push('x-trellis-shadow', '1');
  return {
    method: ctx.req.method ?? 'GET',
    path: target,
    headers,
    hashKey: pool.hashKey?.(ctx.req.headers, ctx.clientIp),
  };
}

export interface CopyRequest {
  method: string;
  path: string;
  headers: string[];
  hashKey: string | undefined;
}

/** Sends the copy of a request to `pool`: one attempt, its own deadline. */
export async function sendCopy(
  pool: ServicePool,
  request: CopyRequest,
  body: Buffer | undefined,
  limits: ShadowLimits,
  deadlines: CopyDeadlines,
): Promise<CopyOutcome> {
  const started = performance.now();
  const deadline = deadlines.start();
  const result = await exchange(pool, {
    method: request.method,
    path: request.path,
    headers: request.headers,
    body,
    maxBodySize: limits.maxResponseSize,
    retry: false,
    signal: deadline,
    isDeadline: () => true,
    hashKey: request.hashKey,
  });
  deadline.done();
  const ms = performance.now() - started;
  if (!result.ok) {
    if (result.failure === 'tooLarge' && result.status !== undefined)
      return { ok: true, answer: { status: result.status, headers: {}, raw: undefined }, ms };
    return { ok: false, failure: result.failure, ms };
  }
  return {
    ok: true,
    answer: { status: result.status, headers: keptHeaders(result.headers), raw: result.body },
    ms,
  };
}

/**
 * The copies' deadlines of one route, on one timer: every copy has the same timeout, so they
 * expire in the order they started, and a linked list in start order with a timer for its head
 * replaces a timer and an AbortSignal per copy. A copy that ends leaves the list at once.
 */
export class CopyDeadlines {
  #head: Deadline | undefined;
  #tail: Deadline | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly timeoutMs: number) {}

  /** A deadline `timeoutMs` from now, as a cancellation signal for the exchange. */
  start(): Deadline {
    const d = new Deadline(performance.now() + this.timeoutMs, this);
    if (this.#tail === undefined) this.#head = d;
    else {
      this.#tail.next = d;
      d.prev = this.#tail;
    }
    this.#tail = d;
    if (this.#timer === undefined) this.#schedule(d.at);
    return d;
  }

  /** Copies waiting on the timer now. */
  get size(): number {
    let n = 0;
    for (let d = this.#head; d !== undefined; d = d.next) n++;
    return n;
  }

  /** @internal */
  remove(d: Deadline): void {
    if (d.prev !== undefined) d.prev.next = d.next;
    else if (this.#head === d) this.#head = d.next;
    else return;
    if (d.next !== undefined) d.next.prev = d.prev;
    else this.#tail = d.prev;
    d.prev = d.next = undefined;
    // The timer is left as it is: it fires early at worst, finds nothing due, and is set again.
  }

  #schedule(at: number): void {
    this.#timer = setTimeout(this.#fire, Math.max(1, Math.ceil(at - performance.now())));
    this.#timer.unref();
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    // Expiring runs listeners that may end other copies (remove), so the head is re-read each time.
    while (this.#head !== undefined && this.#head.at <= now) {
      const d = this.#head;
      this.remove(d);
      d.expire();
    }
    if (this.#head !== undefined && this.#timer === undefined) this.#schedule(this.#head.at);
  };
}

const DEADLINE_PASSED = Object.assign(new Error('shadow copy deadline passed'), { name: 'TimeoutError' });

/** One copy's deadline: the emitter form of an exchange signal (`aborted`, `reason`, `abort`). */
export class Deadline implements Extract<ExchangeSignal, { once: unknown }> {
  aborted = false;
  reason: unknown = undefined;
  prev: Deadline | undefined;
  next: Deadline | undefined;
  #listener: (() => void) | undefined;
  #more: Array<() => void> | undefined;

  constructor(
    readonly at: number,
    private readonly list: CopyDeadlines,
  ) {}

  once(_event: 'abort', listener: () => void): this {
    if (this.#listener === undefined) this.#listener = listener;
    else {
      this.#more ??= [];
      this.#more.push(listener);
    }
    return this;
  }

  off(_event: 'abort', listener: () => void): this {
    if (this.#listener === listener) this.#listener = undefined;
    else if (this.#more !== undefined) {
      const i = this.#more.indexOf(listener);
      if (i !== -1) this.#more.splice(i, 1);
    }
    return this;
  }

  /** The copy ended: it no longer waits on the timer. */
  done(): void {
    this.list.remove(this);
    this.#listener = undefined;
    this.#more = undefined;
  }

  /** @internal The deadline passed. */
  expire(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = DEADLINE_PASSED;
    const first = this.#listener;
    const more = this.#more;
    this.#listener = undefined;
    this.#more = undefined;
    first?.();
    if (more !== undefined) for (const l of more) l();
  }
}

function keptHeaders(h: IncomingHttpHeaders): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of KEPT_HEADERS) {
    const v = h[name];
    if (v !== undefined) out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** An answer as the comparison sees it: decoded when compressed, parsed when JSON. */
export function answerOf(answer: RawAnswer): Answer {
  return { status: answer.status, headers: comparedHeaders(answer), body: parsedBody(answer) };
}

/** The kept headers that are compared (content-encoding is not: it is undone first). */
function comparedHeaders(answer: RawAnswer): Record<string, string | undefined> {
  const { 'content-encoding': _, ...compared } = answer.headers;
  return compared;
}

/** The body decoded and parsed (JSON), or the text; a stand-in when it was too large to keep. */
export function parsedBody(answer: RawAnswer): unknown {
  const { headers, raw } = answer;
  if (raw === undefined) return TOO_LARGE;
  const encoding = headers['content-encoding'];
  let bytes = raw;
  try {
    // Decoded for the comparison only (bounded: the input is at most maxResponseSize); two sides
    // compressing the same JSON differently are not a difference.
    const limit = { maxOutputLength: 16 * 1024 * 1024 };
    if (encoding === 'gzip') bytes = gunzipSync(raw, limit);
    else if (encoding === 'br') bytes = brotliDecompressSync(raw, limit);
    else if (encoding === 'deflate') bytes = inflateSync(raw, limit);
  } catch {
    bytes = raw;
  }
  return bodyOf(bytes.toString('utf8'), headers['content-type']);
}

/** Both bodies the same bytes (same encoding), or both too large to compare: equal without parsing. */
export function sameBody(a: RawAnswer, b: RawAnswer): boolean {
  if (a.raw === undefined || b.raw === undefined) return a.raw === b.raw;
  return a.headers['content-encoding'] === b.headers['content-encoding'] && a.raw.equals(b.raw);
}

const NO_DELTA: BodyDelta = { changed: [], reordered: [] };

/**
 * Compares two raw answers: byte-equal bodies (the common case once a migration is going well)
 * skip decoding, JSON parsing and the structural diff, only status and headers are compared;
 * other pairs are parsed and diffed once per distinct pair of bodies when a `cache` is given
 * (hash, then diff). `answers()` gives the parsed answers for a mismatch that keeps them.
 */
export function compareRaw(
  primary: RawAnswer,
  candidate: RawAnswer,
  options: { ignore?: (path: string) => boolean; noise?: ReadonlySet<string>; rules?: IgnoreRules },
  cache?: ComparisonCache,
): { difference: Difference; answers: () => [Answer, Answer] } {
  const ha = comparedHeaders(primary);
  const hb = comparedHeaders(candidate);
  if (sameBody(primary, candidate)) {
    const difference = compareAnswers(
      { status: primary.status, headers: ha, body: null },
      { status: candidate.status, headers: hb, body: null },
      options,
      NO_DELTA,
    );
    return { difference, answers: () => [answerOf(primary), answerOf(candidate)] };
  }
  const { delta, bodies } =
    cache !== undefined && primary.raw !== undefined && candidate.raw !== undefined
      ? cache.diff(
          primary as RawAnswer & { raw: Buffer },
          candidate as RawAnswer & { raw: Buffer },
          parsedBody,
        )
      : diffed(primary, candidate, parsedBody);
  const a: Answer = { status: primary.status, headers: ha, body: bodies[0] };
  const b: Answer = { status: candidate.status, headers: hb, body: bodies[1] };
  return { difference: compareAnswers(a, b, options, delta), answers: () => [a, b] };
}
