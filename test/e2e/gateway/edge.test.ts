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

// Requests that must be answered at the edge and never reach the origin: request smuggling
// (Content-Length + Transfer-Encoding, conflicting Content-Length), oversized heads, bad paths.
describe('trellis gateway: bad requests are refused at the edge', () => {
  let dir: TempDir;
  let origin: Origin;
  let gw: GatewayProcess;
  let port: number;

  beforeAll(async () => {
    dir = tempDir();
    origin = await startOrigin('origin');
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1, maxHeaderSize: 8kb, maxHeaderCount: 50, maxUrlLength: 2kb }
services:
  origin: { upstreams: ['${origin.url}'] }
routes:
  - match: { pathPrefix: / }
    proxy: { service: origin }
`,
    );
    port = gw.ports.main!;
  });

  afterAll(async () => {
    await gw?.stop();
    await origin?.close();
    dir?.cleanup();
  });

  const probe = async (raw: string) => {
    const before = origin.requests.length;
    const reply = await rawRequest(port, raw);
    return { status: rawStatus(reply), reply, reachedOrigin: origin.requests.length - before };
  };

  it('forwards a well-formed request (the probes below differ only in what they break)', async () => {
    const r = await probe(
      'POST /ok HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello',
    );
    expect(r.status).toBe(200);
    expect(r.reachedOrigin).toBe(1);
    expect(origin.requests.at(-1)?.body).toBe('hello');
  });

  it('refuses Content-Length together with Transfer-Encoding (CL.TE / TE.CL smuggling)', async () => {
    const r = await probe(
      'POST /smuggle HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nhost: x\r\n\r\n',
    );
    expect(r.status).toBe(400);
    expect(r.reply).toContain('application/problem+json');
    expect(r.reachedOrigin).toBe(0);
  });

  it('refuses two different Content-Length values', async () => {
    const r = await probe(
      'POST /dup HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!',
    );
    expect(r.status).toBe(400);
    expect(r.reachedOrigin).toBe(0);
  });

  it('refuses an obfuscated Transfer-Encoding', async () => {
    const r = await probe('POST /te HTTP/1.1\r\nhost: x\r\ntransfer-encoding: xchunked\r\n\r\n0\r\n\r\n');
    expect(r.status).toBe(400);
    expect(r.reachedOrigin).toBe(0);
  });

  it('answers 431 to headers larger than maxHeaderSize', async () => {
    const r = await probe(`GET /big HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(10_000)}\r\n\r\n`);
    expect(r.status).toBe(431);
    expect(r.reply).toContain('TRELLIS_E_HEADERS_TOO_LARGE');
    expect(r.reachedOrigin).toBe(0);
  });

  it('answers 431 to more header fields than maxHeaderCount', async () => {
    const many = Array.from({ length: 60 }, (_, i) => `x-h${i}: 1\r\n`).join('');
    const r = await probe(`GET /many HTTP/1.1\r\nhost: x\r\n${many}connection: close\r\n\r\n`);
    expect(r.status).toBe(431);
    expect(r.reachedOrigin).toBe(0);
  });

  it('answers 414 to a target longer than maxUrlLength', async () => {
    const r = await probe(`GET /${'a'.repeat(3000)} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
    expect(r.status).toBe(414);
    expect(r.reachedOrigin).toBe(0);
  });

  it('refuses malformed paths: broken escapes, encoded slashes, raw and encoded backslashes, encoded NUL', async () => {
    for (const path of [
      '/a%zz',
      '/a%2Fb',
      '/a%2fb',
      '/a%00b',
      '/a%5Cb',
      '/a%5cb',
      '/a\\b',
      '/x/..\\admin',
      '/x\\%2e%2e/admin',
    ]) {
      const r = await probe(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
      expect(r.status, path).toBe(400);
      expect(r.reply).toContain('TRELLIS_E_BAD_PATH');
      expect(r.reachedOrigin).toBe(0);
    }
  });

  it('refuses a backslash or an @ in the Host and in an absolute-form authority', async () => {
    for (const raw of [
      'GET / HTTP/1.1\r\nhost: x\\admin\r\nconnection: close\r\n\r\n',
      'GET / HTTP/1.1\r\nhost: x@evil\r\nconnection: close\r\n\r\n',
      'GET http://x\\admin/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
      'GET http://evil%5cx/ HTTP/1.1\r\nhost: evil%5cx\r\nconnection: close\r\n\r\n',
    ]) {
      const r = await probe(raw);
      expect(r.status, raw).toBe(400);
      expect(r.reachedOrigin).toBe(0);
    }
  });

  it('refuses a request without Host and a garbage request line', async () => {
    expect((await probe('GET / HTTP/1.1\r\nconnection: close\r\n\r\n')).status).toBe(400);
    const garbage = await probe('GARBAGE\r\n\r\n');
    expect(garbage.status).toBe(400);
    expect(garbage.reachedOrigin).toBe(0);
  });
});
