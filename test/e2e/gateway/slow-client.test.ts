import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  type Origin,
  rawStatus,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
} from '../support/index.js';

/** Sends a request head, then its body one byte every `gapMs` (or stops after `stopAfter`). */
function trickle(port: number, body: string, gapMs: number, stopAfter = body.length): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    let timer: NodeJS.Timeout | undefined;
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      reply += c;
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(reply);
    });
    socket.once('error', (err) => (reply ? resolve(reply) : reject(err)));
    socket.write(
      `POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`,
    );
    let sent = 0;
    const next = () => {
      if (sent >= stopAfter) return;
      socket.write(body[sent++]!);
      if (sent < stopAfter) timer = setTimeout(next, gapMs);
    };
    next();
  });
}

// Issue 11, item 3: a client that sends its body slowly never costs an upstream its health.
describe('trellis gateway: slow clients', () => {
  let dir: TempDir;
  const origins: Origin[] = [];
  let gw: GatewayProcess;

  beforeAll(async () => {
    dir = tempDir();
    for (const name of ['a', 'b']) origins.push(await startOrigin(name));
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1, bodyTimeout: 1500ms }
services:
  s:
    upstreams: ['${origins[0]!.url}', '${origins[1]!.url}']
    timeout: 1s
    headersTimeout: 1s
    retry: { attempts: 1 }
    outlier: { consecutive5xx: 2, consecutiveConnectFailures: 2, baseEjection: 1m, maxEjection: 1m }
routes:
  - match: { pathPrefix: / }
    proxy: { service: s }
`,
    );
  });

  afterAll(async () => {
    await gw?.stop();
    await Promise.all(origins.map((o) => o.close()));
    dir?.cleanup();
  });

  const upstreams = async () => {
    const s = (await (await fetch(`${gw.adminUrl}/admin/services`)).json()) as {
      services: {
        name: string;
        upstreams: { id: string; ejected: boolean; consecutiveFailures: number }[];
      }[];
    };
    return s.services.find((x) => x.name === 's')!.upstreams;
  };

  it('a body sent slower than the upstream timeouts is forwarded whole: the timeouts start at its end', async () => {
    // Six bytes over about 2.5 s, against a 1 s upstream timeout and headersTimeout.
    const replies = await Promise.all([
      trickle(gw.ports.main!, 'hello!', 500),
      trickle(gw.ports.main!, 'again!', 500),
    ]);
    for (const reply of replies) expect(rawStatus(reply)).toBe(200);
    expect(origins.flatMap((o) => o.requests.map((r) => r.body)).sort()).toEqual(['again!', 'hello!']);
  });

  it('a client that stops sending its body gets 408, and no upstream is charged or ejected', async () => {
    const replies = await Promise.all([0, 1, 2, 3].map(() => trickle(gw.ports.main!, 'abcdef', 50, 2)));
    for (const reply of replies) {
      expect(rawStatus(reply)).toBe(408);
      expect(reply).toContain('TRELLIS_E_BODY_TIMEOUT');
    }
    for (const u of await upstreams()) {
      expect(u.ejected).toBe(false);
      expect(u.consecutiveFailures).toBe(0);
    }
    const res = await fetch(`${gw.url}/after`);
    expect(res.status).toBe(200);
  });
});
