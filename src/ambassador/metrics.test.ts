import { describe, expect, it } from 'vitest';
import { Registry } from '../core/metrics.js';
import { ambassadorMetrics } from './metrics.js';

describe('ambassadorMetrics', () => {
  it('counts calls and attempts kept between scrapes, once each, across a reload', async () => {
    const registry = new Registry();
    const m = ambassadorMetrics(registry, 'pay');
    m.call(200, 0.01);
    m.call(200, 0.02);
    m.call(503, 0.03);
    m.attempt('http://a', 'success');
    m.attempt('http://a', 'http5xx');
    let text = await registry.metrics();
    expect(text).toContain('trellis_ambassador_requests_total{remote="pay",status="200"} 2');
    expect(text).toContain('trellis_ambassador_requests_total{remote="pay",status="503"} 1');
    expect(text).toContain(
      'trellis_ambassador_attempts_total{remote="pay",upstream="http://a",outcome="http5xx"} 1',
    );
    // A reload makes a new handler with new metrics: the counts go on where they were.
    const again = ambassadorMetrics(registry, 'pay');
    again.call(200, 0.01);
    text = await registry.metrics();
    expect(text).toContain('trellis_ambassador_requests_total{remote="pay",status="200"} 3');
    expect(text).toContain('trellis_ambassador_request_duration_seconds_count{remote="pay"} 4');
    expect(text).toContain('# TYPE trellis_ambassador_request_duration_seconds histogram');
    expect(text).toMatch(/trellis_ambassador_request_duration_seconds_bucket\{le="\+Inf",remote="pay"\} 4/);
    expect(text).toMatch(/trellis_ambassador_request_duration_seconds_sum\{remote="pay"\} 0\.0[67]\d*$/m);
  });
});
