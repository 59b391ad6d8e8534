import type { UpstreamNode } from '../upstream.js';
import type { Balancer, UpstreamFilter } from './types.js';

/** Points on the ring per unit of weight: 160, as in ketama, keeps shares within a few percent. */
const POINTS_PER_WEIGHT = 160;

/**
 * Consistent hashing on a ring with virtual nodes (ketama). Each upstream owns many points; a
 * key goes to the owner of the first point at or after its hash. Taking an upstream away moves
 * only the keys it owned (about 1/N); an unavailable upstream is skipped by walking on to the
 * next point, so its keys spread over the others and come back when it does.
 */
export class ConsistentHashBalancer implements Balancer {
  private readonly points: Uint32Array;
  private readonly owners: UpstreamNode[];
  private fallback = 0;

  constructor(private readonly peers: readonly UpstreamNode[]) {
    const entries: { hash: number; owner: UpstreamNode }[] = [];
    for (const peer of peers) {
      const count = POINTS_PER_WEIGHT * peer.weight;
      for (let i = 0; i < count; i++) entries.push({ hash: hash32(`${peer.id}#${i}`), owner: peer });
    }
    // Ties (rare) are broken by id so every gateway instance builds the same ring.
    entries.sort((x, y) => x.hash - y.hash || (x.owner.id < y.owner.id ? -1 : 1));
    this.points = Uint32Array.from(entries, (e) => e.hash);
    this.owners = entries.map((e) => e.owner);
  }

  pick(accept: UpstreamFilter, hashKey?: string): UpstreamNode | undefined {
    if (hashKey === undefined) return this.pickAny(accept);
    const { points, owners } = this;
    const start = lowerBound(points, hash32(hashKey));
    for (let i = 0; i < points.length; i++) {
      const owner = owners[(start + i) % points.length]!;
      if (accept(owner)) return owner;
    }
    return undefined;
  }

  /** No key to hash (header or cookie absent): spread such requests round robin. */
  private pickAny(accept: UpstreamFilter): UpstreamNode | undefined {
    const n = this.peers.length;
    for (let i = 0; i < n; i++) {
      const peer = this.peers[(this.fallback + i) % n]!;
      if (accept(peer)) {
        this.fallback = (this.fallback + i + 1) % n;
        return peer;
      }
    }
    return undefined;
  }
}

/** Index of the first point >= hash, wrapping to 0 past the end. */
function lowerBound(points: Uint32Array, hash: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid]! < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo === points.length ? 0 : lo;
}

/**
 * FNV-1a over UTF-16 code units with murmur3's finaliser for avalanche. Hand-written because it is
 * ten lines, synchronous and far cheaper per request than node:crypto; it needs to be well spread,
 * not secure (keys are routing hints, and every instance must agree on them).
 */
export function hash32(input: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < input.length; i++) {
    h ^= input.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
