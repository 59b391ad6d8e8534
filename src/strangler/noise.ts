import { type Answer, compareAnswers, generalize } from './diff.js';

/**
 * Noise learning, as Twitter's Diffy does it: a field that differs between two answers of the
 * legacy side itself to the same request (a timestamp, a generated id, a random order) says
 * nothing about the modern side, so differences there are suppressed. Each route keeps the
 * paths (indices generalized to `[*]`) seen to differ legacy-against-legacy, with how often.
 */
export class NoiseModel {
  readonly #seen = new Map<string, number>();
  readonly #paths = new Set<string>();
  #samples = 0;

  /** Learns from two legacy answers to the same request. */
  learn(first: Answer, second: Answer): void {
    this.#samples++;
    const d = compareAnswers(first, second);
    for (const p of [...d.changed, ...d.reordered]) {
      const g = generalize(p);
      this.#seen.set(g, (this.#seen.get(g) ?? 0) + 1);
      this.#paths.add(g);
    }
  }

  /** Two legacy answers with byte-equal bodies: a sample that found nothing noisy. */
  agreed(): void {
    this.#samples++;
  }

  /** The noisy paths (generalized). */
  get paths(): ReadonlySet<string> {
    return this.#paths;
  }

  /** How many legacy pairs it learnt from, and how often each path was noisy. */
  summary(): { samples: number; paths: Record<string, number> } {
    return { samples: this.#samples, paths: Object.fromEntries(this.#seen) };
  }
}
