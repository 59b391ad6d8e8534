import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { admitRequest, type EdgePolicy } from './edge.js';

const POLICY: EdgePolicy = { headersWithUnderscores: 'drop', allowTrace: false };

/** A parsed request head as node hands it over: raw pairs and the lower-cased view. */
function head(raw: string[], more: Partial<IncomingMessage> = {}): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    headers[name] =
      headers[name] === undefined || name === 'host'
        ? (headers[name] ?? raw[i + 1]!)
        : `${headers[name]}, ${raw[i + 1]}`;
  }
  return {
    httpVersionMajor: 1,
    httpVersionMinor: 1,
    httpVersion: '1.1',
    method: 'GET',
    url: '/',
    rawHeaders: raw,
    headers,
    ...more,
  } as unknown as IncomingMessage;
}

describe('admitRequest', () => {
  it('admits a plain request untouched', () => {
    const req = head(['Host', 'api.test:8080', 'Connection', 'keep-alive', 'Accept', '*/*']);
    expect(admitRequest(req, POLICY)).toBeUndefined();
    expect(req.rawHeaders).toEqual(['Host', 'api.test:8080', 'Connection', 'keep-alive', 'Accept', '*/*']);
  });

  it.each([
    ['two Host headers', ['Host', 'a', 'host', 'b'], 'more than one Host'],
    ['two Authorization headers', ['Host', 'a', 'Authorization', 'x', 'authorization', 'y'], 'Authorization'],
    ['a space in Host', ['Host', 'a b'], 'Host'],
    ['a comma in Host', ['Host', 'a,b'], 'Host'],
    ['an @ in Host', ['Host', 'u@a'], 'Host'],
    ['a raw backslash in Host', ['Host', 'a\\b'], 'Host'],
    ['an encoded backslash in Host', ['Host', 'a%5cb'], 'Host'],
    ['an empty Host on HTTP/1.1', ['Host', ''], 'Host'],
  ])('refuses %s with 400', (_what, raw, says) => {
    const refusal = admitRequest(head(raw), POLICY);
    expect(refusal).toMatchObject({ status: 400, code: 'TRELLIS_E_BAD_REQUEST' });
    expect(refusal!.detail).toContain(says);
  });

  it('accepts bracketed IPv6 and an HTTP/1.0 request without Host', () => {
    expect(admitRequest(head(['Host', '[::1]:8080']), POLICY)).toBeUndefined();
    expect(admitRequest(head([], { httpVersionMinor: 0, httpVersion: '1.0' }), POLICY)).toBeUndefined();
  });

  it.each([
    ['http://evil.test/x', 400],
    ['http://a@evil.test/x', 400],
    ['http://x\\admin/', 400],
    ['https://x:443/ok', undefined],
    ['http://X:80/ok', undefined],
    ['http://x/ok', undefined],
  ])('absolute-form %s with Host x: %s', (url, status) => {
    expect(admitRequest(head(['Host', 'x'], { url }), POLICY)?.status).toBe(status);
  });

  it('answers 505 to HTTP/2.0 and 400 to a missing version', () => {
    expect(
      admitRequest(head(['Host', 'a'], { httpVersionMajor: 2, httpVersion: '2.0' }), POLICY),
    ).toMatchObject({
      status: 505,
      code: 'TRELLIS_E_HTTP_VERSION',
    });
    expect(
      admitRequest(head(['Host', 'a'], { httpVersionMajor: 0, httpVersionMinor: 9 }), POLICY)?.status,
    ).toBe(400);
  });

  it('refuses TRACE unless allowed, and h2c upgrades always', () => {
    expect(admitRequest(head(['Host', 'a'], { method: 'TRACE' }), POLICY)?.status).toBe(405);
    expect(
      admitRequest(head(['Host', 'a'], { method: 'TRACE' }), { ...POLICY, allowTrace: true }),
    ).toBeUndefined();
    const h2c = head(['Host', 'a', 'Connection', 'Upgrade, HTTP2-Settings', 'Upgrade', 'h2c']);
    expect(admitRequest(h2c, POLICY)).toMatchObject({ status: 400, code: 'TRELLIS_E_UPGRADE_REFUSED' });
  });

  it('drops headers with an underscore unless kept', () => {
    const raw = ['Host', 'a', 'X_Forwarded_For', '6.6.6.6', 'x_user_id', 'root', 'X-Ok', '1'];
    const dropped = head([...raw]);
    expect(admitRequest(dropped, POLICY)).toBeUndefined();
    expect(dropped.rawHeaders).toEqual(['Host', 'a', 'X-Ok', '1']);
    expect(Object.keys(dropped.headers)).toEqual(['host', 'x-ok']);
    const kept = head([...raw]);
    admitRequest(kept, { ...POLICY, headersWithUnderscores: 'keep' });
    expect(kept.rawHeaders).toEqual(raw);
  });

  it('removes the headers named in Connection, but never framing or routing ones', () => {
    const req = head([
      'Host',
      'a',
      'Content-Length',
      '2',
      'X-Hop',
      '1',
      'Connection',
      'keep-alive, X-Hop, host, content-length',
    ]);
    expect(admitRequest(req, POLICY)).toBeUndefined();
    expect(req.rawHeaders).toEqual(['Host', 'a', 'Content-Length', '2', 'Connection', 'keep-alive']);
    expect(req.headers.connection).toBe('keep-alive');
    expect(req.headers['x-hop']).toBeUndefined();
  });
});
