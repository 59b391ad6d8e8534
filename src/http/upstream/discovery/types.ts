import type { Logger } from 'pino';

/** What a discovery source reports, and how the pool sees a source. */

/** One upstream a source found. */
export interface DiscoveredUpstream {
  /** An origin, `http://10.0.0.5:8080`. */
  url: string;
  /** Relative share, 1..128. */
  weight: number;
  /** The TLS name (SNI, verification) for an https upstream found by address: the DNS name. */
  servername?: string;
}

/** Where the upstreams of a service come from, as the admin API shows it. */
export interface DiscoveryStatus {
  source: 'dns' | 'registry';
  /** The DNS name (`A api.internal`) or the registry prefix (`services/payments/`). */
  target: string;
  /** Upstreams in the last good answer. */
  upstreams: number;
  /** When the last good answer (DNS) or registry change came (ISO), absent before the first. */
  lastUpdate?: string;
  /** The last failure since then, absent when the last attempt succeeded. */
  lastError?: string;
  /** Failures in a row (0 after an answer). */
  failures: number;
  /** DNS: when the name is resolved again (ISO). */
  nextResolution?: string;
}

/**
 * A running source: it calls `onUpdate` with the whole set each time it changes (never with an
 * empty set because of a failure: the last good set stays), and `onFailure` for each failed
 * resolution or broken watch.
 */
export interface DiscoverySource {
  readonly kind: DiscoveryStatus['source'];
  start(onUpdate: (upstreams: DiscoveredUpstream[]) => void): void;
  /** Settles once the first answer or the first failure is in. */
  readonly settled: Promise<void>;
  status(): DiscoveryStatus;
  close(): Promise<void>;
}

/** The source-independent deps: logging and failure counting. */
export interface DiscoveryDeps {
  logger: Logger;
  onFailure?: () => void;
}

/** Two sets hold the same upstreams with the same weights. */
export function sameSet(a: readonly DiscoveredUpstream[], b: readonly DiscoveredUpstream[]): boolean {
  if (a.length !== b.length) return false;
  const key = (u: DiscoveredUpstream) => `${u.url} ${u.weight} ${u.servername ?? ''}`;
  const left = new Set(a.map(key));
  return b.every((u) => left.has(key(u)));
}

/** Sorted by URL, one entry per URL (the first wins): the set a source hands over. */
export function normalise(upstreams: readonly DiscoveredUpstream[]): DiscoveredUpstream[] {
  const seen = new Map<string, DiscoveredUpstream>();
  for (const u of upstreams) if (!seen.has(u.url)) seen.set(u.url, u);
  return [...seen.values()].sort((x, y) => (x.url < y.url ? -1 : x.url > y.url ? 1 : 0));
}
