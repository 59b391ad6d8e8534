import { describe, expect, it } from 'vitest';
import { clientAddress, peerAddress, pushForwardingHeaders, TrustedProxies } from './forwarded.js';

describe('trusted proxies and forwarding headers', () => {
  const trusted = new TrustedProxies(['10.0.0.0/8', '::1', '192.168.1.7']);

  it('matches addresses and CIDRs, IPv4-mapped included', () => {
    expect(trusted.trusts('10.1.2.3')).toBe(true);
    expect(trusted.trusts('::ffff:10.1.2.3')).toBe(true);
    expect(trusted.trusts('::1')).toBe(true);
    expect(trusted.trusts('192.168.1.7')).toBe(true);
    expect(trusted.trusts('192.168.1.8')).toBe(false);
    expect(new TrustedProxies([]).trusts('10.1.2.3')).toBe(false);
  });

  it('believes X-Forwarded-For only from a trusted peer, taking the right-most untrusted hop', () => {
    const headers = { 'x-forwarded-for': '6.6.6.6, 1.2.3.4, 10.0.0.5' };
    expect(clientAddress('10.0.0.9', headers, trusted)).toBe('1.2.3.4');
    expect(clientAddress('8.8.8.8', headers, trusted)).toBe('8.8.8.8');
    expect(clientAddress('10.0.0.9', { 'x-forwarded-for': 'garbage' }, trusted)).toBe('10.0.0.9');
    expect(peerAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
  });

  it('extends the headers of a trusted peer and replaces those of anyone else', () => {
    const incoming = {
      host: 'shop.example',
      'x-forwarded-for': '1.2.3.4',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'www.shop.example',
      forwarded: 'for=1.2.3.4;proto=https',
    };
    const fromTrusted: string[] = [];
    pushForwardingHeaders(fromTrusted, incoming, {
      peer: '10.0.0.9',
      trustedPeer: true,
      protocol: 'http',
      host: 'shop.example',
    });
    expect(fromTrusted).toEqual([
      'x-forwarded-for',
      '1.2.3.4, 10.0.0.9',
      'x-forwarded-proto',
      'https',
      'x-forwarded-host',
      'www.shop.example',
      'forwarded',
      'for=1.2.3.4;proto=https, for=10.0.0.9;proto=http;host=shop.example',
    ]);
    const fromClient: string[] = [];
    pushForwardingHeaders(fromClient, incoming, {
      peer: '2001:db8::1',
      trustedPeer: false,
      protocol: 'http',
      host: 'shop.example:8080',
    });
    expect(fromClient).toEqual([
      'x-forwarded-for',
      '2001:db8::1',
      'x-forwarded-proto',
      'http',
      'x-forwarded-host',
      'shop.example:8080',
      'forwarded',
      'for="[2001:db8::1]";proto=http;host="shop.example:8080"',
    ]);
  });
});
