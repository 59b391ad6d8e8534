import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { routeStatsMetrics } from './route-stats.js';

describe('route statistics', () => {
  it('expose requests by code and a cumulative latency histogram in the Prometheus format', async () => {
    const registry = new Registry();
    const table = routeStatsMetrics(registry);
    const stats = table.get('web', 'catalog', 'catalog');
    stats.record(200, 0.0004);
    stats.record(200, 0.003);
    stats.record(502, 20);
    expect(table.get('web', 'catalog', 'catalog')).toBe(stats);
    const text = await registry.metrics();
    const labels = 'frontend="web",route="catalog",service="catalog"';
    expect(text).toContain(`trellis_gateway_requests_total{${labels},code="200"} 2`);
    expect(text).toContain(`trellis_gateway_requests_total{${labels},code="502"} 1`);
    expect(text).toContain('# TYPE trellis_gateway_request_duration_seconds histogram');
    expect(text).toContain(`trellis_gateway_request_duration_seconds_bucket{le="0.0005",${labels}} 1`);
    expect(text).toContain(`trellis_gateway_request_duration_seconds_bucket{le="0.005",${labels}} 2`);
    expect(text).toContain(`trellis_gateway_request_duration_seconds_bucket{le="10",${labels}} 2`);
    expect(text).toContain(`trellis_gateway_request_duration_seconds_bucket{le="+Inf",${labels}} 3`);
    expect(text).toContain(`trellis_gateway_request_duration_seconds_count{${labels}} 3`);
    expect(text).toMatch(new RegExp(`trellis_gateway_request_duration_seconds_sum\\{${labels}\\} 20\\.003`));
  });
});
