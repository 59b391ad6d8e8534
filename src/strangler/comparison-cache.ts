import { createHash } from 'node:crypto';
import { type BodyDelta, bodyDelta } from './diff.js';
import type { RawAnswer } from './shadow.js';

/**
 * Hash, then diff: the bodies' structural diff of a pair of answers, remembered by the bytes of
 * both. A route in shadow mode sees the same pairs again and again (the same resource asked
 * for by many clients, answered the same way by each side, a difference that stays until it is
 * fixed), and decoding, parsing and diffing both bodies is most of a comparison's CPU and
 * allocation; a SHA-256 of the bytes is a small part of it. What is kept is the delta before
 * ignore rules and noise (those change while the route runs and are applied on every use) and
 * the parsed bodies (the mismatch log takes its examples from them, read-only; status and
 * headers are each request's own).
 *
 * Bounded: at most `entries` pairs, least recently used first out, and only pairs whose bodies
 * are each at most `maxBodyBytes` (a larger pair is diffed every time, never kept).
 */
export class ComparisonCache {
  readonly #pairs = new Map<string, Diffed>();
  hits = 0;
  misses = 0;

  constructor(
    readonly entries = 128,
    readonly maxBodyBytes = 16 * 1024,
  ) {}

  /**
   * The delta and parsed bodies of two raw answers with bodies (not byte-equal: the caller's
   * fast path handles those): from the cache, or parsed by `parse` and diffed, then kept.
   */
  diff(
    primary: RawAnswer & { raw: Buffer },
    candidate: RawAnswer & { raw: Buffer },
    parse: (a: RawAnswer) => unknown,
  ): Diffed {
    if (primary.raw.length > this.maxBodyBytes || candidate.raw.length > this.maxBodyBytes)
      return diffed(primary, candidate, parse);
    const key = keyOf(primary, candidate);
    const hit = this.#pairs.get(key);
    if (hit !== undefined) {
      this.hits++;
      // Moved to the back: a Map iterates in insertion order, so the front is the least recent.
      this.#pairs.delete(key);
      this.#pairs.set(key, hit);
      return hit;
    }
    this.misses++;
    const entry = diffed(primary, candidate, parse);
    if (this.#pairs.size >= this.entries) this.#pairs.delete(this.#pairs.keys().next().value!);
    this.#pairs.set(key, entry);
    return entry;
  }

  get size(): number {
    return this.#pairs.size;
  }
}

/** Two parsed bodies and where they differ. */
export interface Diffed {
  delta: BodyDelta;
  bodies: readonly [unknown, unknown];
}

export function diffed(a: RawAnswer, b: RawAnswer, parse: (a: RawAnswer) => unknown): Diffed {
  const bodies = [parse(a), parse(b)] as const;
  return { delta: bodyDelta(bodies[0], bodies[1]), bodies };
}

/**
 * The pair's identity: what decides how each body is decoded and parsed (encoding, content
 * type), the lengths, and a SHA-256 over both bodies.
 */
function keyOf(a: RawAnswer & { raw: Buffer }, b: RawAnswer & { raw: Buffer }): string {
  const h = createHash('sha256').update(a.raw).update(b.raw).digest('base64');
  return `${a.headers['content-encoding']}|${a.headers['content-type']}|${a.raw.length}|${b.headers['content-encoding']}|${b.headers['content-type']}|${b.raw.length}|${h}`;
}
