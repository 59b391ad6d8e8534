import { describe, expect, it } from 'vitest';
import { parseAmbassadorConfig } from './ambassador.js';

const parse = (text: string) => parseAmbassadorConfig(text, 'ambassador.yaml');

describe('ambassador schema', () => {
  it('fills the defaults and binds loopback', () => {
    const c = parse(
      `remotes:\n  pay: { listen: { port: 7001 }, service: { upstreams: [http://127.0.0.1:3001] } }\n`,
    );
    const pay = c.remotes.pay!;
    expect(pay.listen).toMatchObject({ host: '127.0.0.1', port: 7001 });
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

  it('a Unix socket listener: unix:/path or { path, mode }, the mode in quotes', () => {
    const one = (listen: string) =>
      parse(`remotes:\n  pay: { listen: ${listen}, service: { upstreams: [http://127.0.0.1:3001] } }\n`)
        .remotes.pay!.listen;
    expect(one('unix:/run/pay.sock')).toMatchObject({
      path: '/run/pay.sock',
      mode: 0o660,
      maxHeaderSize: 16_384,
    });
    expect(one("{ path: /run/pay.sock, mode: '0600', bodyTimeout: 5s }")).toMatchObject({
      path: '/run/pay.sock',
      mode: 0o600,
      bodyTimeout: 5_000,
    });
    expect(() => one('{ path: /run/pay.sock, tls: {} }')).toThrow(/tls/);
    expect(() => one('unix:run/pay.sock')).toThrow(/write unix:\/absolute\/path\.sock/);
    expect(() => one('{ path: run/pay.sock }')).toThrow(/a Unix socket path is absolute/);
    expect(() => one('{ path: /run/pay.sock, mode: 0660 }')).toThrow(/write the mode in quotes/);
    expect(() => one('{ prot: 7001 }')).toThrow(/port/);
  });
});
