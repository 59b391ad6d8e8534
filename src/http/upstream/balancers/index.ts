import type { ServiceDef } from '../schema.js';
import type { UpstreamNode } from '../upstream.js';
import { ConsistentHashBalancer } from './consistent-hash.js';
import { LeastRequestBalancer } from './least-request.js';
import { RoundRobinBalancer } from './round-robin.js';
import type { Balancer } from './types.js';

export { ConsistentHashBalancer, hash32 } from './consistent-hash.js';
export { LeastRequestBalancer } from './least-request.js';
export { RoundRobinBalancer } from './round-robin.js';
export type { Balancer, UpstreamFilter } from './types.js';

/** The balancer a service's `balance` option names. */
export function createBalancer(balance: ServiceDef['balance'], upstreams: readonly UpstreamNode[]): Balancer {
  switch (balance) {
    case 'least-request':
      return new LeastRequestBalancer(upstreams);
    case 'consistent-hash':
      return new ConsistentHashBalancer(upstreams);
    default:
      return new RoundRobinBalancer(upstreams);
  }
}
