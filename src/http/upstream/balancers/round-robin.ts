import type { UpstreamNode } from '../upstream.js';
import type { Balancer, UpstreamFilter } from './types.js';

/**
 * Smooth weighted round robin, nginx's algorithm (ngx_http_upstream_get_peer): each pick adds
 * every eligible peer's weight to its running score, takes the highest, and subtracts the total
 * from it. Weights 5,1,1 give a a b a c a a: the heavy peer's turns are spread out rather than
 * bunched, which keeps a burst from landing on one origin. Skipped peers do not accumulate score.
 */
export class RoundRobinBalancer implements Balancer {
  private readonly peers: UpstreamNode[];
  private readonly current: number[];

  constructor(upstreams: readonly UpstreamNode[]) {
    this.peers = [...upstreams];
    this.current = upstreams.map(() => 0);
  }

  pick(accept: UpstreamFilter): UpstreamNode | undefined {
    const { peers, current } = this;
    let best = -1;
    let total = 0;
    for (let i = 0; i < peers.length; i++) {
      const peer = peers[i]!;
      if (!accept(peer)) continue;
      current[i]! += peer.weight;
      total += peer.weight;
      if (best < 0 || current[i]! > current[best]!) best = i;
    }
    if (best < 0) return undefined;
    current[best]! -= total;
    return peers[best];
  }
}
