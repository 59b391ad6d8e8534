import { describe, expect, it } from 'vitest';
import { clientResponseHeaders } from './forward.js';
import { socketPeer } from './forwarded.js';

const raw = (...pairs: string[]) => pairs.map((p) => Buffer.from(p, 'latin1'));

describe('clientResponseHeaders', () => {
  it('drops hop-by-hop headers in any case and the upstream request id, keeps the rest in order', () => {
    const out = clientResponseHeaders(
      raw(
        'Content-Type',
        'application/json',
        'Connection',
        'keep-alive',
        'KEEP-ALIVE',
        'timeout=5',
        'Transfer-Encoding',
        'chunked',
        'TE',
        'trailers',
        'Trailer',
        'x',
        'Upgrade',
        'h2c',
        'Proxy-Connection',
        'close',
        'Proxy-Authenticate',
        'Basic',
        'X-Request-Id',
        'upstream-id',
        'Set-Cookie',
        'a=1',
        'Set-Cookie',
        'b=2',
        'Content-Length',
        '2',
        'Tee',
        'kept',
        'Upgraded',
        'kept',
        'X-Request-Ix',
        'kept',
      ),
      'rid',
    );
    expect(out).toEqual([
      'Content-Type',
      'application/json',
      'Set-Cookie',
      'a=1',
      'Set-Cookie',
      'b=2',
      'Content-Length',
      '2',
      'Tee',
      'kept',
      'Upgraded',
      'kept',
      'X-Request-Ix',
      'kept',
      'x-request-id',
      'rid',
    ]);
  });

  it('drops the headers a Connection header names, wherever they appear', () => {
    const out = clientResponseHeaders(
      raw('X-Secret', '1', 'Connection', 'close, X-Secret, x-other', 'X-Other', '2', 'X-Kept', '3'),
      'rid',
    );
    expect(out).toEqual(['X-Kept', '3', 'x-request-id', 'rid']);
  });
});

describe('socketPeer', () => {
  it('strips the IPv4-mapped prefix, quotes IPv6 for Forwarded, and remembers it on the socket', () => {
    const v4 = { remoteAddress: '::ffff:10.1.2.3' };
    expect(socketPeer(v4)).toEqual({ peer: '10.1.2.3', forNode: '10.1.2.3' });
    v4.remoteAddress = '10.9.9.9'; // remembered from the first request on the connection
    expect(socketPeer(v4).peer).toBe('10.1.2.3');
    expect(socketPeer({ remoteAddress: '::1' })).toEqual({ peer: '::1', forNode: '"[::1]"' });
  });

  it('does not remember a destroyed socket without an address', () => {
    const s: { remoteAddress?: string } = {};
    expect(socketPeer(s).peer).toBe('');
    s.remoteAddress = '127.0.0.1';
    expect(socketPeer(s).peer).toBe('127.0.0.1');
  });
});
