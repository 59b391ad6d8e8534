import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { type GatewayProcess, startGatewayCli, type TempDir, tempDir } from '../support/index.js';

// A WebSocket round trip through the gateway: the upgrade is proxied and frames flow both ways.
describe('trellis gateway: WebSocket', () => {
  let dir: TempDir;
  let origin: Server;
  let wss: WebSocketServer;
  let gw: GatewayProcess;
  let upgradePath = '';
  let forwardedFor: string | undefined;

  beforeAll(async () => {
    dir = tempDir();
    origin = createServer((_req, res) => res.end('plain'));
    wss = new WebSocketServer({ server: origin });
    wss.on('connection', (socket, req) => {
      upgradePath = req.url ?? '';
      forwardedFor = req.headers['x-forwarded-for'] as string | undefined;
      socket.on('message', (data, isBinary) => socket.send(isBinary ? data : `echo:${String(data)}`));
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    const port = (origin.address() as { port: number }).port;
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
drainTimeout: 1s
services:
  chat: { upstreams: ['http://127.0.0.1:${port}'] }
routes:
  - match: { pathPrefix: /chat }
    proxy: { service: chat, stripPrefix: /chat }
  - match: { pathPrefix: /no-ws }
    proxy: { service: chat, websocket: false }
`,
    );
  });

  afterAll(async () => {
    await gw?.stop();
    wss?.close();
    await new Promise<void>((r) => (origin ? origin.close(() => r()) : r()));
    dir?.cleanup();
  });

  it('proxies the upgrade and echoes text and binary frames both ways', async () => {
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/chat/room/1?user=ann`);
    const received: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const done = new Promise<void>((resolve) => {
      ws.on('message', (data, isBinary) => {
        received.push(isBinary ? `bin:${(data as Buffer).toString('hex')}` : String(data));
        if (received.length === 3) resolve();
      });
    });
    ws.send('hello');
    ws.send(Buffer.from([1, 2, 3]));
    ws.send('x'.repeat(100_000));
    await done;
    expect(received[0]).toBe('echo:hello');
    expect(received[1]).toBe('bin:010203');
    expect(received[2]).toBe(`echo:${'x'.repeat(100_000)}`);
    expect(upgradePath).toBe('/room/1?user=ann');
    expect(forwardedFor).toBe('127.0.0.1');
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.close(1000);
    expect(await closed).toBe(1000);
  });

  it('refuses an upgrade on a route that does not allow it, and no route means 404', async () => {
    const refused = new WebSocket(`${gw.url.replace('http', 'ws')}/no-ws`);
    const status = await new Promise<number>((resolve) => {
      refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      refused.once('error', () => resolve(-1));
    });
    expect(status).toBe(426);
    const missing = new WebSocket(`${gw.url.replace('http', 'ws')}/nowhere`);
    const status404 = await new Promise<number>((resolve) => {
      missing.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      missing.once('error', () => resolve(-1));
    });
    expect(status404).toBe(404);
  });

  it('still exits 0 on SIGTERM with a WebSocket open: the socket is closed after drainTimeout', async () => {
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/chat/stay`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    expect(await gw.stop('SIGTERM')).toBe(0);
    await closed;
  });
});
