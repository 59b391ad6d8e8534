import { type Answer, compileIgnore, type Difference, generalize } from './diff.js';

/**
 * The evidence of a migration: every comparison of a route is counted, and its mismatches are
 * kept for `trellis strangler report` (bounded: the last `keep` per route, a sampled share with
 * bodies, each body cut to `maxBodySize`; secrets redacted: credential headers always, listed
 * JSON paths on request). Per field (a changed path, indices as `[*]`) the count and the last
 * example of both values are kept, at most MAX_FIELDS fields per route.
 */

/** Headers never kept: they carry credentials. */
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']);
const MAX_FIELDS = 500;
const REDACTED = '[redacted]';

export interface KeptAnswer {
  status: number;
  headers: Record<string, string | undefined>;
  body: unknown;
  /** The body was longer than the kept size and was cut (kept as text). */
  truncated?: boolean;
}

/** One kept mismatch. */
export interface Mismatch {
  at: string;
  requestId: string;
  method: string;
  path: string;
  /** The side that answered the client. */
  primary: 'legacy' | 'modern';
  difference: Difference;
  /** Present for sampled mismatches. */
  answers?: { primary: KeptAnswer; candidate: KeptAnswer };
}

export interface FieldTally {
  path: string;
  count: number;
  example: { primary: unknown; candidate: unknown; requestId: string };
}

/** What `report` shows for a route. */
export interface MismatchReport {
  compared: number;
  mismatched: number;
  /** Mismatches / comparisons (0 when nothing was compared). */
  rate: number;
  /** Copies whose other side failed (error, timeout, too large): not compared, counted apart. */
  failed: number;
  statusMismatches: number;
  reorderings: number;
  /** Most frequent first. */
  fields: FieldTally[];
  recent: Mismatch[];
}

export interface MismatchLogOptions {
  keep: number;
  sample: number;
  redact: readonly string[];
  maxBodySize: number;
  random?: () => number;
}

/** One route's comparisons and kept mismatches. */
export class MismatchLog {
  #compared = 0;
  #mismatched = 0;
  #failed = 0;
  #status = 0;
  #reorderings = 0;
  readonly #recent: Mismatch[] = [];
  readonly #fields = new Map<string, FieldTally>();
  readonly #redact: (path: string) => boolean;

  constructor(readonly options: MismatchLogOptions) {
    this.#redact = compileIgnore({ paths: options.redact });
  }

  /** A copy that produced no comparable answer. */
  failure(): void {
    this.#failed++;
  }

  /** One comparison that found the answers equal (the bodies need not be parsed for it). */
  matched(): void {
    this.#compared++;
  }

  /** One comparison; keeps it when it is a mismatch (sampled). */
  record(
    request: { requestId: string; method: string; path: string; primary: 'legacy' | 'modern' },
    difference: Difference,
    primary: Answer,
    candidate: Answer,
  ): void {
    this.#compared++;
    if (difference.equal) return;
    this.#mismatched++;
    if (difference.status !== undefined) this.#status++;
    if (difference.reordered.length > 0) this.#reorderings++;
    for (const p of difference.changed) this.#tally(generalize(p), p, primary, candidate, request.requestId);
    for (const p of difference.reordered)
      this.#tally(`${generalize(p)} (order)`, p, primary, candidate, request.requestId);
    if (this.options.keep === 0) return;
    const kept: Mismatch = {
      at: new Date().toISOString(),
      requestId: request.requestId,
      method: request.method,
      path: request.path,
      primary: request.primary,
      difference,
    };
    if ((this.options.random ?? Math.random)() < this.options.sample) {
      kept.answers = { primary: this.#keep(primary), candidate: this.#keep(candidate) };
    }
    this.#recent.push(kept);
    if (this.#recent.length > this.options.keep) this.#recent.shift();
  }

  /** Counts one differing path (`field`, generalized) and keeps this request's values as its example. */
  #tally(field: string, path: string, primary: Answer, candidate: Answer, requestId: string): void {
    const redacted = this.#redact(path);
    const example = {
      primary: redacted ? REDACTED : valueAt(primary.body, path),
      candidate: redacted ? REDACTED : valueAt(candidate.body, path),
      requestId,
    };
    const tally = this.#fields.get(field);
    if (tally !== undefined) {
      tally.count++;
      tally.example = example;
    } else if (this.#fields.size < MAX_FIELDS) this.#fields.set(field, { path: field, count: 1, example });
  }

  #keep(a: Answer): KeptAnswer {
    const headers: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(a.headers)) if (!SECRET_HEADERS.has(k.toLowerCase())) headers[k] = v;
    const body = redactPaths(a.body, '', this.#redact);
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    if (text !== undefined && text.length > this.options.maxBodySize)
      return { status: a.status, headers, body: text.slice(0, this.options.maxBodySize), truncated: true };
    return { status: a.status, headers, body };
  }

  /** The counts, the top fields and the kept mismatches (newest last). */
  report(top = 20): MismatchReport {
    return {
      compared: this.#compared,
      mismatched: this.#mismatched,
      rate: this.#compared === 0 ? 0 : this.#mismatched / this.#compared,
      failed: this.#failed,
      statusMismatches: this.#status,
      reorderings: this.#reorderings,
      fields: [...this.#fields.values()].sort((a, b) => b.count - a.count).slice(0, top),
      recent: [...this.#recent],
    };
  }
}

/** Paths split into their parts, by path: the same few paths differ on every mismatch of a route. */
const PARTS = new Map<string, readonly string[]>();
const PARTS_KEPT = 1000;

/** The value at a path like `items[2].price` (undefined when absent). */
export function valueAt(body: unknown, path: string): unknown {
  if (path === '(body)') return body;
  let parts = PARTS.get(path);
  if (parts === undefined) {
    parts = path.match(/[^.[\]]+|\[\d+\]/g) ?? [];
    if (PARTS.size >= PARTS_KEPT) PARTS.clear();
    PARTS.set(path, parts);
  }
  let v: unknown = body;
  for (const part of parts) {
    if (v === null || typeof v !== 'object') return undefined;
    v = part.startsWith('[')
      ? (v as unknown[])[Number(part.slice(1, -1))]
      : (v as Record<string, unknown>)[part];
  }
  return v;
}

/** A copy of a JSON value with the values at redacted paths replaced. */
function redactPaths(v: unknown, path: string, redact: (p: string) => boolean): unknown {
  if (path !== '' && redact(path)) return REDACTED;
  if (Array.isArray(v)) return v.map((x, i) => redactPaths(x, `${path}[${i}]`, redact));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = redactPaths(x, path === '' ? k : `${path}.${k}`, redact);
    return out;
  }
  return v;
}
