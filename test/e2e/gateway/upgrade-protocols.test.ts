import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  rawRequest,
  rawStatus,
  runCli,
  startGatewayCli,
  type TempDir,
  tempDir,
} from '../support/index.js';

// Issue 11, item 2: only `websocket` is tunnelled by default, other Upgrade protocols only where
// a route lists them, h2c never; an upgraded request goes through the route's middlewares and
// carries X-Forwarded-* like any other.
describe('trellis gateway: which Upgrade protocols are tunnelled', () => {
  let dir: TempDir;
  let origin: Server;
  let gw: GatewayProcess;
  const upgrades: { url: string; headers: IncomingHttpHeaders }[] = [];
  const tunnels = new Set<Duplex>();

  beforeAll(async () => {
    dir = tempDir();
    // An origin that accepts any upgrade (the worst case: h2c smuggling relies on one) and then
    // echoes what it reads.
    origin = createServer((_req, res) => res.end('plain'));
    origin.on('upgrade', (req, socket) => {
      tunnels.add(socket);
      socket.once('close', () => tunnels.delete(socket));
      upgrades.push({ url: req.url ?? '', headers: req.headers });
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${req.headers.upgrade}\r\n\r\n`,
      );
      socket.on('data', (d: Buffer) => socket.write(`echo:${d.toString()}`));
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    const port = (origin.address() as { port: number }).port;
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
drainTimeout: 1s
services:
  o: { upstreams: ['http://127.0.0.1:${port}'] }
middlewares:
  mark: { headers: { request: { set: { x-from-gateway: 'yes' } } } }
  key: { apiKey: { keys: [{ name: ann, sha256: '6ab9f1eb8f7d3388f4f9d586f66e99fd54080df2c446f0e58668b09c08a16dd0' }] } }
routes:
  - match: { pathPrefix: /custom }
    middlewares: [mark]
    proxy: { service: o, upgrades: [foo] }
  - match: { pathPrefix: /locked }
    middlewares: [key]
    proxy: { service: o }
  - match: { pathPrefix: / }
    proxy: { service: o }
`,
    );
  });

  afterAll(async () => {
    await gw?.stop();
    // Upgraded sockets are no longer the server's to close (and node keeps them half-open).
    for (const t of tunnels) t.destroy();
    await new Promise<void>((r) => (origin ? origin.close(() => r()) : r()));
    dir?.cleanup();
  });

  const upgrade = async (path: string, protocol: string, extra = '', connection = 'Upgrade') => {
    const before = upgrades.length;
    const reply = await rawRequest(
      gw.ports.main!,
      `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: ${connection}\r\nupgrade: ${protocol}\r\n${extra}\r\nping`,
      500,
    );
    return { status: rawStatus(reply), reply, reachedOrigin: upgrades.length - before };
  };

  it('refuses h2c at the edge, on every route', async () => {
    for (const path of ['/', '/custom/x']) {
      const r = await upgrade(
        path,
        'h2c',
        'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n',
        'Upgrade, HTTP2-Settings',
      );
      expect(r.status, path).toBe(400);
      expect(r.reply).toContain('TRELLIS_E_UPGRADE_REFUSED');
      expect(r.reachedOrigin).toBe(0);
    }
  });

  it('refuses a protocol the route does not list (426) and never opens a tunnel', async () => {
    const r = await upgrade('/plain', 'foo');
    expect(r.status).toBe(426);
    expect(r.reply).toContain('TRELLIS_E_UPGRADE_REFUSED');
    expect(r.reachedOrigin).toBe(0);
  });

  it('tunnels a listed protocol, after the route middlewares, with X-Forwarded-*', async () => {
    const r = await upgrade('/custom/room', 'foo');
    expect(r.status).toBe(101);
    expect(r.reply).toContain('echo:ping');
    const seen = upgrades.at(-1)!;
    expect(seen.headers.upgrade).toBe('foo');
    expect(seen.headers['x-from-gateway']).toBe('yes');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
  });

  it('sends only the allowed token upstream when the client offers several', async () => {
    const r = await upgrade('/custom/room', 'bar, foo/2');
    expect(r.status).toBe(101);
    expect(upgrades.at(-1)!.headers.upgrade).toBe('foo/2');
  });

  it('runs the route middlewares on an upgrade: no key, no tunnel', async () => {
    const r = await upgrade('/locked', 'websocket', 'sec-websocket-version: 13\r\n');
    expect(r.status).toBe(401);
    expect(r.reachedOrigin).toBe(0);
  });

  it('refuses h2c in a route list when the file is validated', async () => {
    const file = dir.write(
      'bad.yaml',
      `services:\n  o: { upstreams: ['http://127.0.0.1:1'] }\nroutes:\n  - { match: { pathPrefix: / }, proxy: { service: o, upgrades: [h2c] } }\n`,
    );
    const r = await runCli(['validate', file]);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('h2c upgrades are refused');
  });
});
