import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  type Origin,
  rawRequest,
  rawStatus,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
} from '../support/index.js';

// The request heads a hostile client sends to get past a protected route or to put words in
// the gateway's mouth (issue 11, items 1, 5, 6, 7, 8): each is refused at the edge or cleaned
// before the middlewares run, and never reaches the origin as sent.
const KEY_SHA = '6ab9f1eb8f7d3388f4f9d586f66e99fd54080df2c446f0e58668b09c08a16dd0'; // "k1"

const config = (originUrl: string, listenExtra = '') => `listen: { port: 0, host: 127.0.0.1${listenExtra} }
services:
  origin: { upstreams: ['${originUrl}'] }
middlewares:
  key: { apiKey: { keys: [{ name: ann, sha256: '${KEY_SHA}' }], nameHeader: x-key-name } }
routes:
  - match: { pathPrefix: /admin }
    middlewares: [key]
    proxy: { service: origin }
  - match: { pathPrefix: / }
    proxy: { service: origin }
`;

describe('trellis gateway: request-head strictness at the edge', () => {
  let dir: TempDir;
  let origin: Origin;
  let gw: GatewayProcess;
  let lenient: GatewayProcess | undefined;

  beforeAll(async () => {
    dir = tempDir();
    origin = await startOrigin('origin');
    gw = await startGatewayCli(`${dir.path}/gateway.yaml`, config(origin.url));
  });

  /** A second gateway with the lenient options, started by the tests that need it. */
  const lenientPort = async () => {
    lenient ??= await startGatewayCli(
      `${dir.path}/lenient.yaml`,
      config(origin.url, ', headersWithUnderscores: keep, allowTrace: true'),
    );
    return lenient.ports.main!;
  };

  afterAll(async () => {
    await gw?.stop();
    await lenient?.stop();
    await origin?.close();
    dir?.cleanup();
  });

  const probe = async (raw: string, port = gw.ports.main!) => {
    const before = origin.requests.length;
    const reply = await rawRequest(port, raw);
    return { status: rawStatus(reply), reply, reachedOrigin: origin.requests.length - before };
  };
  const get = (target: string, headers = '') =>
    probe(`GET ${target} HTTP/1.1\r\nhost: x\r\n${headers}connection: close\r\n\r\n`);

  describe('item 1: a raw backslash cannot reach a protected prefix through the public route', () => {
    it.each([
      '/admin\\users',
      '/admin\\..\\admin/users',
      '/public\\..\\admin/users',
      '/public/..\\admin',
      '/\\admin/users',
      '/public\\%2e%2e\\admin',
      '/admin%5cusers',
      '/admin%5Cusers',
      '/public/..%5cadmin',
    ])('%s is refused 400 and never forwarded', async (target) => {
      const r = await get(target);
      expect(r.status).toBe(400);
      expect(r.reply).toContain('TRELLIS_E_BAD_PATH');
      expect(r.reachedOrigin).toBe(0);
    });
  });

  describe('item 5: headers the gateway sets cannot be removed by the client', () => {
    it('a header named in Connection is removed before the middlewares, never after', async () => {
      const r = await get(
        '/admin/me',
        'x-api-key: k1\r\nx-custom: hop\r\nConnection: keep-alive, x-key-name, x-forwarded-for, x-custom\r\n',
      );
      expect(r.status).toBe(200);
      const seen = origin.requests.at(-1)!;
      expect(seen.headers['x-key-name']).toBe('ann');
      expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(seen.headers['x-custom']).toBeUndefined();
    });

    it('a client-sent copy of a gateway-set header named in Connection does not survive either', async () => {
      const r = await get('/public', 'x-key-name: root\r\nConnection: x-key-name\r\n');
      expect(r.status).toBe(200);
      expect(origin.requests.at(-1)!.headers['x-key-name']).toBeUndefined();
    });
  });

  describe('item 6: underscore twins of trusted headers', () => {
    it('are dropped by default', async () => {
      const r = await get('/admin/me', 'x-api-key: k1\r\nX_Forwarded_For: 6.6.6.6\r\nx_key_name: root\r\n');
      expect(r.status).toBe(200);
      const names = Object.keys(origin.requests.at(-1)!.headers);
      expect(names.filter((n) => n.includes('_'))).toEqual([]);
      expect(origin.requests.at(-1)!.headers['x-key-name']).toBe('ann');
    });

    it('pass with headersWithUnderscores: keep', async () => {
      const r = await probe(
        'GET /x HTTP/1.1\r\nhost: x\r\nx_tenant: t1\r\nconnection: close\r\n\r\n',
        await lenientPort(),
      );
      expect(r.status).toBe(200);
      expect(origin.requests.at(-1)!.headers.x_tenant).toBe('t1');
    });
  });

  describe('item 7: one Authorization header', () => {
    it('a request with two is refused 400 and never forwarded', async () => {
      const r = await get('/x', 'authorization: Bearer good\r\nauthorization: Bearer evil\r\n');
      expect(r.status).toBe(400);
      expect(r.reply).toContain('Authorization');
      expect(r.reachedOrigin).toBe(0);
    });
  });

  describe('item 8: Host and request-line strictness', () => {
    it('more than one Host is 400', async () => {
      const r = await probe('GET /x HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n');
      expect(r.status).toBe(400);
      expect(r.reachedOrigin).toBe(0);
    });

    it.each(['a b', 'a,b', 'user@a', 'a\\b', 'a:80:80', ''])('Host %j is 400', async (host) => {
      const r = await probe(`GET /x HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`);
      expect(r.status).toBe(400);
      expect(r.reachedOrigin).toBe(0);
    });

    it('an absolute-form target must name the Host it is sent with', async () => {
      const other = await probe('GET http://evil.test/x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
      expect(other.status).toBe(400);
      expect(other.reachedOrigin).toBe(0);
      const at = await probe('GET http://x@evil.test/x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
      expect(at.status).toBe(400);
      expect(at.reachedOrigin).toBe(0);
      const same = await probe('GET http://X:80/ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
      expect(same.status).toBe(200);
      expect(origin.requests.at(-1)!.url).toBe('/ok');
    });

    it('HTTP/2.0 on the request line is 505, a missing version 400', async () => {
      const h2 = await probe('GET /x HTTP/2.0\r\nhost: x\r\nconnection: close\r\n\r\n');
      expect(h2.status).toBe(505);
      expect(h2.reply).toContain('TRELLIS_E_HTTP_VERSION');
      expect(h2.reachedOrigin).toBe(0);
      const none = await probe('GET /x\r\nhost: x\r\n\r\n');
      expect(none.status).toBe(400);
      expect(none.reachedOrigin).toBe(0);
    });

    it('TRACE is 405 by default and routed with allowTrace: true', async () => {
      const r = await probe('TRACE /x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
      expect(r.status).toBe(405);
      expect(r.reply.toLowerCase()).toContain('allow: ');
      expect(r.reachedOrigin).toBe(0);
      const routed = await probe(
        'TRACE /x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
        await lenientPort(),
      );
      expect(routed.status).toBe(200);
    });

    it('CONNECT is answered 405, not a dropped socket', async () => {
      const r = await probe('CONNECT evil.test:443 HTTP/1.1\r\nhost: evil.test:443\r\n\r\n');
      expect(r.status).toBe(405);
      expect(r.reply).toContain('TRELLIS_E_METHOD_NOT_ALLOWED');
      expect(r.reachedOrigin).toBe(0);
    });

    it.each([
      ['400', 'GET /a%zz HTTP/1.1\r\nhost: x\r\n\r\n'],
      ['414', `GET /${'a'.repeat(9000)} HTTP/1.1\r\nhost: x\r\n\r\n`],
      [
        '431',
        `GET /x HTTP/1.1\r\nhost: x\r\n${Array.from({ length: 120 }, (_, i) => `x-h${i}: 1\r\n`).join('')}\r\n`,
      ],
    ])(
      'a %s refusal closes the connection: the request pipelined after it is never served',
      async (status, raw) => {
        const r = await probe(`${raw}GET /after HTTP/1.1\r\nhost: x\r\n\r\n`);
        expect(String(r.status)).toBe(status);
        expect(r.reply.toLowerCase()).toContain('connection: close');
        expect(r.reply.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
        expect(r.reachedOrigin).toBe(0);
      },
    );
  });
});
