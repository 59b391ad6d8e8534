import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../core/config.js';
import { serviceSchema } from './schema.js';

/** The error text a user sees for a service written as YAML. */
function problems(yaml: string): string {
  try {
    parseConfig(yaml, serviceSchema, 'svc.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the service to be rejected');
}

describe('serviceSchema', () => {
  it('fills in the documented defaults', () => {
    const def = parseConfig('upstreams: [http://127.0.0.1:3001]', serviceSchema);
    expect(def).toEqual({
      upstreams: ['http://127.0.0.1:3001'],
      balance: 'round-robin',
      timeout: 30_000,
      connectTimeout: 5_000,
      headersTimeout: 15_000,
      retry: {
        attempts: 2,
        backoff: { base: 25, max: 250 },
        budget: { ratio: 0.2, minPerSecond: 10 },
        on: ['connect-failure', 'reset', '502', '503', '504'],
      },
      outlier: {
        consecutive5xx: 5,
        consecutiveConnectFailures: 3,
        baseEjection: 30_000,
        maxEjection: 300_000,
        maxEjectedPercent: 50,
      },
      pool: { connections: 128, keepAliveTimeout: 4_000, pipelining: 1 },
    });
  });

  it('reads the whole option set', () => {
    const def = parseConfig(
      [
        'upstreams: [http://a:1, { url: "https://b.internal", weight: 3 }]',
        'balance: consistent-hash',
        'hashOn: { cookie: session }',
        'timeout: 2s',
        'retry: { attempts: 3, on: [connect-failure, 503], backoff: { base: 10ms, max: 1s } }',
        'healthCheck: { path: /ready, interval: 5s, timeout: 1s, expectStatus: 204 }',
        'outlier: { consecutive5xx: 2, baseEjection: 10s }',
        'pool: { connections: 16, keepAliveTimeout: 10s, pipelining: 2 }',
      ].join('\n'),
      serviceSchema,
    );
    expect(def.upstreams[1]).toEqual({ url: 'https://b.internal', weight: 3 });
    expect(def.hashOn).toEqual({ cookie: 'session' });
    expect(def.retry.on).toEqual(['connect-failure', '503']);
    expect(def.healthCheck).toMatchObject({
      path: '/ready',
      interval: 5000,
      expectStatus: [204],
      healthyThreshold: 2,
    });
    expect(def.pool).toEqual({ connections: 16, keepAliveTimeout: 10_000, pipelining: 2 });
  });

  it('says what is wrong with an upstream URL', () => {
    expect(problems('upstreams:\n  - http://127.0.0.1:3001/api\n  - ftp://files\n  - not a url\n')).toBe(
      [
        `svc.yaml:2:5 upstreams[0]: upstream "http://127.0.0.1:3001/api" must be an origin without a path or query: write http://127.0.0.1:3001 and set the path with the route's rewrite`,
        'svc.yaml:3:5 upstreams[1]: upstream "ftp://files" must start with http:// or https://',
        'svc.yaml:4:5 upstreams[2]: invalid upstream URL "not a url": write an origin like http://127.0.0.1:3001',
      ].join('\n'),
    );
    expect(problems('upstreams: [http://u:p@h:1]')).toBe(
      'svc.yaml:1:13 upstreams[0]: upstream "http://u:p@h:1" must not carry credentials: add them with a headers middleware',
    );
    expect(problems('upstreams: []')).toBe(
      'svc.yaml:1:12 upstreams: a service needs at least one upstream: list upstreams:, or find them with discovery:',
    );
  });

  it('names unknown options and impossible combinations', () => {
    expect(problems('upstreams: [http://a:1]\nbalanse: round-robin')).toBe(
      'svc.yaml:2:1 balanse: unknown option "balanse" (did you mean "balance"?)',
    );
    expect(problems('upstreams: [http://a:1]\nbalance: random')).toBe(
      'svc.yaml:2:10 balance: must be one of "round-robin", "least-request", "consistent-hash"',
    );
    expect(problems('upstreams: [http://a:1]\nhashOn: clientIp')).toBe(
      'svc.yaml:2:9 hashOn: hashOn applies only to balance: consistent-hash: set the balance, or remove hashOn',
    );
    expect(problems('upstreams: [http://a:1]\nbalance: consistent-hash\nhashOn: { heder: x }')).toBe(
      'svc.yaml:3:9 hashOn: write hashOn as { header: NAME }, { cookie: NAME } or clientIp',
    );
    expect(problems('upstreams: [http://a:1]\nretry: { on: [500] }')).toBe(
      'svc.yaml:2:15 retry.on[0]: a retry condition is one of connect-failure, reset, timeout, 502, 503, 504, 429',
    );
    expect(problems('upstreams: [http://a:1]\nretry: { backoff: { base: 1s, max: 100ms } }')).toBe(
      'svc.yaml:2:36 retry.backoff.max: retry.backoff.max must be at least retry.backoff.base',
    );
    expect(problems('upstreams: [http://a:1]\nhealthCheck: { path: ready }')).toBe(
      'svc.yaml:2:22 healthCheck.path: a health check path starts with /',
    );
    expect(problems('upstreams: [{ url: http://a:1, weight: 0 }]')).toBe(
      'svc.yaml:1:40 upstreams[0].weight: a weight is a whole number from 1 to 128',
    );
  });
});
