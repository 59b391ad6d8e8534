import { describe, expect, it } from 'vitest';
import { histogramQuantile, parseSamples, routeTotals, trafficBetween } from './public/metrics.js';

const LES = ['0.005', '0.01', '0.05', '0.1', '+Inf'];

/** Prometheus text for one route as prom-client writes it: codes, then cumulative buckets. */
function scrape(route: string, codes: Record<string, number>, cumulative: number[]): string {
  const labels = `frontend="web",route="${route}",service="catalog"`;
  const lines = [
    '# HELP trellis_gateway_requests_total Requests answered.',
    '# TYPE trellis_gateway_requests_total counter',
  ];
  for (const [code, n] of Object.entries(codes))
    lines.push(`trellis_gateway_requests_total{${labels},code="${code}"} ${n}`);
  LES.forEach((le, i) => {
    lines.push(`trellis_gateway_request_duration_seconds_bucket{le="${le}",${labels}} ${cumulative[i]}`);
  });
  lines.push(`trellis_gateway_request_duration_seconds_count{${labels}} ${cumulative.at(-1)}`);
  lines.push('trellis_process_cpu_seconds_total 1.5');
  return lines.join('\n');
}

describe('dashboard traffic figures', () => {
  it('keeps only the gateway request families and unescapes label values', () => {
    const samples = parseSamples(
      'trellis_gateway_requests_total{frontend="a\\"b",route="r\\\\x",service="",code="200"} 3\nother_total 9\n',
    );
    expect(samples).toEqual([
      {
        name: 'trellis_gateway_requests_total',
        labels: { frontend: 'a"b', route: 'r\\x', service: '', code: '200' },
        value: 3,
      },
    ]);
  });

  it('interpolates quantiles inside a bucket like histogram_quantile', () => {
    // 10 observations: 4 up to 10 ms, 6 more up to 50 ms.
    const buckets: [number, number][] = [
      [0.01, 4],
      [0.05, 10],
      [Number.POSITIVE_INFINITY, 10],
    ];
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(0.01 + 0.04 * (1 / 6));
    expect(histogramQuantile(0.2, buckets)).toBeCloseTo(0.005);
    expect(
      histogramQuantile(0.99, [
        [0.1, 0],
        [Number.POSITIVE_INFINITY, 5],
      ]),
    ).toBe(0.1);
    expect(
      histogramQuantile(0.5, [
        [0.1, 0],
        [Number.POSITIVE_INFINITY, 0],
      ]),
    ).toBeUndefined();
  });

  it('derives rate, 5xx share and percentiles from the difference between two scrapes', () => {
    const before = routeTotals(parseSamples(scrape('list', { '200': 10 }, [10, 10, 10, 10, 10])));
    // 20 more requests in 2 s: 15 slow 200s (10–50 ms) and 5 fast 503s (under 5 ms).
    const after = routeTotals(parseSamples(scrape('list', { '200': 25, '503': 5 }, [15, 15, 30, 30, 30])));
    const [row] = trafficBetween(before, after, 2);
    expect(row).toMatchObject({ frontend: 'web', route: 'list', service: 'catalog', total: 30 });
    expect(row!.perSecond).toBe(10);
    expect(row!.errorRate).toBe(0.25);
    expect(row!.p50).toBeCloseTo(0.01 + 0.04 * (5 / 15));
    expect(row!.p99).toBeCloseTo(0.01 + 0.04 * (14.8 / 15));
  });

  it('shows no rate or percentile for an idle interval, and counts from zero after a restart', () => {
    const totals = routeTotals(parseSamples(scrape('idle', { '200': 4 }, [4, 4, 4, 4, 4])));
    expect(trafficBetween(totals, totals, 2)[0]).toMatchObject({
      perSecond: 0,
      errorRate: undefined,
      p50: undefined,
    });
    const restarted = routeTotals(parseSamples(scrape('idle', { '200': 2 }, [0, 2, 2, 2, 2])));
    expect(trafficBetween(totals, restarted, 2)[0]).toMatchObject({ perSecond: 1, total: 2 });
  });
});
