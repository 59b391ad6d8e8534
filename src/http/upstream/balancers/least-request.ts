import type { UpstreamNode } from '../upstream.js';
import type { Balancer, UpstreamFilter } from './types.js';

/**
 * Least request by the power of two choices (Mitzenmacher; Envoy's LEAST_REQUEST): draw two
 * eligible upstreams at random, weighted, and send to the one with fewer requests in flight per
 * unit of weight. Two random draws avoid the herd a global "least loaded" causes when many
 * requests pick at once, at O(1) cost instead of a scan of every load.
 */
export class LeastRequestBalancer implements Balancer {
  private readonly peers: UpstreamNode[];
  /** Indices of the eligible peers of the current pick; reused to keep picks allocation-free. */
  private readonly eligible: Int32Array;
  private readonly equalWeights: boolean;

  constructor(
    upstreams: readonly UpstreamNode[],
    private readonly random: () => number = Math.random,
  ) {
    this.peers = [...upstreams];
    this.eligible = new Int32Array(upstreams.length);
    this.equalWeights = upstreams.every((u) => u.weight === upstreams[0]!.weight);
  }

  pick(accept: UpstreamFilter): UpstreamNode | undefined {
    const { peers, eligible } = this;
    let count = 0;
    let totalWeight = 0;
    for (let i = 0; i < peers.length; i++) {
      if (!accept(peers[i]!)) continue;
      eligible[count++] = i;
      totalWeight += peers[i]!.weight;
    }
    if (count === 0) return undefined;
    if (count === 1) return peers[eligible[0]!];
    const first = this.draw(count, totalWeight, -1);
    const second = this.draw(count, totalWeight, first);
    const a = peers[eligible[first]!]!;
    const b = peers[eligible[second]!]!;
    // Ties go to the first draw, which is weighted: idle upstreams share traffic by weight.
    return (b.inFlight + 1) / b.weight < (a.inFlight + 1) / a.weight ? b : a;
  }

  /** A weighted random position in `eligible[0..count)`, other than `not`. */
  private draw(count: number, totalWeight: number, not: number): number {
    if (this.equalWeights) {
      if (not < 0) return Math.floor(this.random() * count);
      // Uniform among the others: shift past `not`.
      return (not + 1 + Math.floor(this.random() * (count - 1))) % count;
    }
    const skipWeight = not < 0 ? 0 : this.peers[this.eligible[not]!]!.weight;
    let target = this.random() * (totalWeight - skipWeight);
    for (let k = 0; k < count; k++) {
      if (k === not) continue;
      target -= this.peers[this.eligible[k]!]!.weight;
      if (target < 0) return k;
    }
    // Floating-point leftovers: the last candidate that is not `not`.
    return count - 1 === not ? count - 2 : count - 1;
  }
}
