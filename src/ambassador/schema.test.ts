import { describe, expect, it } from 'vitest';
import { parseAmbassadorConfig } from './ambassador.js';

const parse = (text: string) => parseAmbassadorConfig(text, 'ambassador.yaml');

describe('ambassador schema', () => {
  it('fills the defaults and binds loopback', () => {
    const c = parse(
      `remotes:\n  pay: { listen: { port: 7001 }, service: { upstreams: [http://127.0.0.1:3001] } }\n`,
    );
    const pay = c.remotes.pay!;
    expect(pay.listen!.host).toBe('127.0.0.1');
    expect(pay.timeout).toBe(10_000);
    expect(pay.perTryTimeout).toBe(2_000);
    expect(pay.breaker.consecutiveFailures).toBe(5);
    expect(pay.bulkhead).toEqual({ maxConcurrent: 256, maxQueue: 256 });
  });

  it('refuses an empty file, a remote with neither listen nor hosts, and a per-try longer than the total', () => {
    expect(() => parse('')).toThrow(/no remotes:/);
    expect(() => parse(`remotes:\n  pay: { service: { upstreams: [http://127.0.0.1:3001] } }\n`)).toThrow(
      /needs its own listen/,
    );
    expect(() =>
      parse(
        `remotes:\n  pay: { listen: { port: 1 }, timeout: 1s, perTryTimeout: 2s, service: { upstreams: [http://a:1] } }\n`,
      ),
    ).toThrow(/perTryTimeout must not be longer than timeout/);
    expect(() =>
      parse(`remotes:\n  pay: { hosts: [pay.internal], service: { upstreams: [http://a:1] } }\n`),
    ).toThrow(/no top-level listen/);
  });

  it('reports broken YAML with its line, not as an unexpected error', () => {
    expect(() => parse('remotes:\n  pay: { listen: { port: 1 }, x: ${A} }\n')).toThrow(/ambassador\.yaml:2/);
  });

  it('accepts 429 as a retry condition', () => {
    const c = parse(
      `remotes:\n  pay: { listen: { port: 1 }, service: { upstreams: [http://a:1], retry: { on: [429, 503] } } }\n`,
    );
    expect(c.remotes.pay!.service.retry.on).toEqual(['429', '503']);
  });
});
