import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { HealthChecker, statusMatcher } from './health-check.js';
import { serviceSchema } from './schema.js';
import { nodes, startOrigin, type TestOrigin, waitFor } from './testing.js';
import { UpstreamNode } from './upstream.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

const checkDef = (healthCheck: Record<string, unknown>) =>
  serviceSchema.parse({ upstreams: ['http://x.test'], healthCheck }).healthCheck!;

async function checked(origin: TestOrigin, healthCheck: Record<string, unknown>) {
  const [template] = nodes({ x: 1 });
  const upstream = new UpstreamNode(new URL(origin.url), 1, template!.dispatcher, Date.now);
  const changes: boolean[] = [];
  const checker = new HealthChecker([upstream], checkDef(healthCheck), {
    logger: silentLogger(),
    onChange: (u) => changes.push(u.healthy),
  });
  checker.start();
  cleanup.push(() => checker.close());
  return { upstream, changes };
}

async function origin(status: { code: number }) {
  const o = await startOrigin((req, res) => {
    res.statusCode = req.url === '/ready' ? status.code : 404;
    res.end();
  });
  cleanup.push(() => o.close());
  return o;
}

describe('HealthChecker', () => {
  it('turns unhealthy after unhealthyThreshold failures and healthy after healthyThreshold passes', async () => {
    const status = { code: 200 };
    const o = await origin(status);
    const { upstream, changes } = await checked(o, {
      path: '/ready',
      interval: '15ms',
      timeout: '2s',
      unhealthyThreshold: 3,
      healthyThreshold: 2,
    });
    await waitFor(() => o.seen.length >= 2, 5000, 'first checks');
    expect(upstream.healthy).toBe(true);

    status.code = 503;
    const failingFrom = o.seen.length;
    await waitFor(() => !upstream.healthy, 5000, 'unhealthy');
    expect(upstream.lastHealthCheck).toMatchObject({ passed: false, detail: 'status 503' });
    // At least three failed checks were needed (one in flight when the status flipped may pass).
    expect(o.seen.length - failingFrom).toBeGreaterThanOrEqual(3);

    status.code = 204;
    const passingFrom = o.seen.length;
    await waitFor(() => upstream.healthy, 5000, 'healthy again');
    expect(upstream.lastHealthCheck).toMatchObject({ passed: true, detail: 'status 204' });
    expect(Date.parse(upstream.lastHealthCheck!.at)).toBeGreaterThan(Date.now() - 60_000);
    expect(o.seen.length - passingFrom).toBeGreaterThanOrEqual(2);
    expect(changes).toEqual([false, true]);
    expect(o.seen.every((path) => path === '/ready')).toBe(true);
  });

  it('counts an unreachable origin and a slow answer as failures', async () => {
    const dead = await startOrigin();
    const url = dead.url;
    await dead.close();
    const { upstream } = await checked(
      { ...dead, url },
      { interval: '10ms', timeout: '10ms', unhealthyThreshold: 2 },
    );
    await waitFor(() => !upstream.healthy, 5000, 'unreachable origin unhealthy');
    expect(upstream.lastHealthCheck).toMatchObject({ passed: false, detail: 'ECONNREFUSED' });

    const slow = await startOrigin((_req, res) => {
      setTimeout(() => res.end(), 500).unref();
    });
    cleanup.push(() => slow.close());
    const second = await checked(slow, { interval: '20ms', timeout: '20ms', unhealthyThreshold: 2 });
    await waitFor(() => !second.upstream.healthy, 5000, 'slow origin unhealthy');
    expect(second.upstream.lastHealthCheck).toMatchObject({ passed: false, detail: 'timeout' });
  });

  it('stops checking when closed', async () => {
    const o = await origin({ code: 200 });
    const [template] = nodes({ x: 1 });
    const upstream = new UpstreamNode(new URL(o.url), 1, template!.dispatcher, Date.now);
    const checker = new HealthChecker(
      [upstream],
      checkDef({ path: '/ready', interval: '10ms', timeout: '2s' }),
      {
        logger: silentLogger(),
      },
    );
    checker.start();
    await waitFor(() => o.seen.length >= 2);
    await checker.close();
    const after = o.seen.length;
    // Proving an absence needs some time to pass: wait for many intervals' worth of a second origin's checks.
    const witness = await origin({ code: 200 });
    await checked(witness, { path: '/ready', interval: '10ms', timeout: '2s' });
    await waitFor(() => witness.seen.length >= 5);
    expect(o.seen.length).toBe(after);
  });
});

describe('statusMatcher', () => {
  it('matches exact codes and classes', () => {
    const ok = statusMatcher([204, '3xx']);
    expect([200, 204, 301, 399, 404, 500].map(ok)).toEqual([false, true, true, true, false, false]);
  });
});
