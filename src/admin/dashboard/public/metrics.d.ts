// Types for metrics.js (plain JS so the page loads it without a build step).
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface RouteTotal {
  frontend: string;
  route: string;
  service: string;
  total: number;
  errors: number;
  buckets: [number, number][];
}
export interface TrafficRow {
  frontend: string;
  route: string;
  service: string;
  total: number;
  perSecond: number | undefined;
  errorRate: number | undefined;
  p50: number | undefined;
  p99: number | undefined;
}
export function parseSamples(text: string, names?: string[]): Sample[];
export function routeTotals(samples: Sample[]): Map<string, RouteTotal>;
export function histogramQuantile(q: number, buckets: [number, number][]): number | undefined;
export function trafficBetween(
  before: Map<string, RouteTotal> | undefined,
  after: Map<string, RouteTotal>,
  seconds: number,
): TrafficRow[];
