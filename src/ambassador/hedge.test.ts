import { describe, expect, it } from 'vitest';
import { Registry } from '../core/metrics.js';
import { parseAmbassadorConfig } from './ambassador.js';
import { hedgeOptions, LatencyWindow } from './hedge.js';
import { ambassadorMetrics } from './metrics.js';

const remote = (hedge: string, extra = '') =>
  `remotes:\n  pay: { listen: { port: 1 }, ${extra}hedge: ${hedge}, service: { upstreams: [http://a:1] } }\n`;

describe('ambassador hedging', () => {
  it('the p95 window: NaN until 20 samples, then the 95th percentile', () => {
    const w = new LatencyWindow();
    for (let i = 1; i <= 19; i++) w.record(i);
    expect(w.percentile95()).toBeNaN();
    w.record(20);
    expect(w.percentile95()).toBe(20);
    // 64 samples: 1..64, recomputed at the 64th.
    for (let i = 21; i <= 64; i++) w.record(i);
    expect(w.percentile95()).toBe(61);
  });

  it('after: p95 waits max until the window is full enough, then the p95 between min and max', () => {
    const metrics = ambassadorMetrics(new Registry(), 'pay');
    const cfg = parseAmbassadorConfig(remote('{ after: p95, min: 10ms, max: 200ms }'), 'a.yaml').remotes.pay!
      .hedge!;
    const { options, window } = hedgeOptions(cfg, metrics);
    expect(options.delayMs()).toBe(200);
    for (let i = 0; i < 64; i++) window!.record(1);
    expect(options.delayMs()).toBe(10);
    for (let i = 0; i < 64; i++) window!.record(5_000);
    expect(options.delayMs()).toBe(200);
    const fixed = hedgeOptions(
      parseAmbassadorConfig(remote('{ after: 50ms }'), 'a.yaml').remotes.pay!.hedge!,
      metrics,
    );
    expect(fixed.window).toBeUndefined();
    expect(fixed.options.delayMs()).toBe(50);
    expect([...fixed.options.methods]).toEqual(['GET', 'HEAD']);
  });

  it('refuses a non-idempotent method unless the remote opts in, and a bad after', () => {
    expect(() => parseAmbassadorConfig(remote('{ after: 50ms, methods: [GET, POST] }'), 'a.yaml')).toThrow(
      /POST is not idempotent: hedging would send it twice/,
    );
    expect(
      parseAmbassadorConfig(
        remote('{ after: 50ms, methods: [POST] }', 'retryNonIdempotent: true, '),
        'a.yaml',
      ).remotes.pay!.hedge!.methods,
    ).toEqual(['POST']);
    expect(() => parseAmbassadorConfig(remote('{ after: p99 }'), 'a.yaml')).toThrow(
      /after is p95 or a duration/,
    );
  });
});
