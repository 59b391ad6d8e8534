import type { UpstreamNode } from '../upstream.js';

/** Which upstreams a pick may return. */
export type UpstreamFilter = (upstream: UpstreamNode) => boolean;

/**
 * Chooses one upstream among those the filter accepts, or undefined when it accepts none. The
 * pool widens the filter when that happens, so a balancer never has to know about fallbacks.
 */
export interface Balancer {
  pick(accept: UpstreamFilter, hashKey?: string): UpstreamNode | undefined;
}
