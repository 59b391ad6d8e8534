import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  type Origin,
  type OriginProcess,
  type SeenRequest,
  spawnOrigin,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

/** How an origin behaves now; tests flip it while the gateway runs. */
type Mode = 'ok' | '500' | '503' | 'reset';

function switchable(name: string) {
  const state = { mode: 'ok' as Mode };
  const handler = (req: SeenRequest, res: ServerResponse) => {
    if (state.mode === 'reset') {
      res.socket?.destroy();
      return;
    }
    const status = state.mode === 'ok' ? 200 : Number(state.mode);
    const text = JSON.stringify({ origin: name, url: req.url });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  return { state, handler };
}

// Balancing, failover, outlier ejection and re-admission, and retries through the real CLI.
describe('trellis gateway: upstreams', () => {
  let dir: TempDir;
  let gw: GatewayProcess;
  const o: Record<string, Origin> = {};
  const modes: Record<string, { mode: Mode }> = {};
  // The failover pair runs in their own processes, so one can be killed with SIGKILL.
  let c: OriginProcess;
  let d: OriginProcess;

  beforeAll(async () => {
    dir = tempDir();
    [c, d] = await Promise.all([spawnOrigin('c'), spawnOrigin('d')]);
    for (const name of ['a', 'b', 'e', 'f', 'g', 'h']) {
      const s = switchable(name);
      modes[name] = s.state;
      o[name] = await startOrigin(name, s.handler);
    }
    gw = await startGatewayCli(
      `${dir.path}/gateway.yaml`,
      `listen: { port: 0, host: 127.0.0.1 }
services:
  rr: { upstreams: ['${o.a!.url}', '${o.b!.url}'] }
  weighted: { upstreams: [{ url: '${o.a!.url}', weight: 3 }, { url: '${o.b!.url}', weight: 1 }] }
  failover: { upstreams: ['${c.url}', '${d.url}'], retry: { attempts: 2, budget: { minPerSecond: 1000 } } }
  eject:
    upstreams: ['${o.e!.url}', '${o.f!.url}']
    retry: { attempts: 1 }
    outlier: { consecutive5xx: 3, baseEjection: 1s, maxEjection: 2s }
  sticky: { upstreams: ['${o.a!.url}', '${o.b!.url}'], balance: consistent-hash, hashOn: { header: x-user } }
  writes:
    upstreams: ['${o.g!.url}', '${o.h!.url}']
    retry: { attempts: 3, budget: { minPerSecond: 1000 } }
routes:
  - { match: { pathPrefix: /rr }, proxy: { service: rr } }
  - { match: { pathPrefix: /weighted }, proxy: { service: weighted } }
  - { match: { pathPrefix: /failover }, proxy: { service: failover } }
  - { match: { pathPrefix: /eject }, proxy: { service: eject } }
  - { match: { pathPrefix: /writes }, proxy: { service: writes } }
  - { match: { pathPrefix: /sticky }, proxy: { service: sticky } }
  - { match: { pathPrefix: /opt-in }, proxy: { service: writes, retryNonIdempotent: true } }
`,
    );
  });

  afterAll(async () => {
    await gw?.stop();
    await Promise.all(Object.values(o).map((x) => x.close()));
    await Promise.all([c?.signal('SIGKILL'), d?.signal('SIGKILL')]);
    dir?.cleanup();
  });

  const call = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${gw.url}${path}`, init);
    const text = await res.text();
    return {
      status: res.status,
      origin: res.status === 200 ? (JSON.parse(text) as { origin: string }).origin : text,
    };
  };
  const tally = async (path: string, n: number) => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await call(path);
      expect(r.status).toBe(200);
      counts[r.origin] = (counts[r.origin] ?? 0) + 1;
    }
    return counts;
  };

  it('balances round robin evenly and by weight', async () => {
    expect(await tally('/rr', 20)).toEqual({ a: 10, b: 10 });
    expect(await tally('/weighted', 40)).toEqual({ a: 30, b: 10 });
  });

  it('keeps a client on one upstream with consistent hashing on a header', async () => {
    const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
    const first = new Map<string, string>();
    for (const u of users) first.set(u, (await call('/sticky', { headers: { 'x-user': u } })).origin);
    for (const u of users)
      expect((await call('/sticky', { headers: { 'x-user': u } })).origin).toBe(first.get(u));
    // Twelve keys over two upstreams: both get some.
    expect(new Set(first.values()).size).toBe(2);
  });

  it('fails over when an upstream is killed with SIGKILL: no client sees an error', async () => {
    expect(await tally('/failover', 4)).toEqual({ c: 2, d: 2 });
    await d.signal('SIGKILL');
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await call('/failover'));
    expect(results.every((r) => r.status === 200 && r.origin === 'c')).toBe(true);
  });

  it('ejects an upstream after consecutive 5xx and re-admits it when its ejection ends', async () => {
    modes.f!.mode = '500';
    // Round robin sends every other request to f until it has failed three times.
    await waitUntil(async () => {
      await call('/eject');
      const s = (await (await fetch(`${gw.adminUrl}/admin/services`)).json()) as {
        services: { name: string; upstreams: { id: string; ejected: boolean }[] }[];
      };
      return s.services.find((x) => x.name === 'eject')?.upstreams.find((u) => u.id === o.f!.url)?.ejected;
    }, 'f to be ejected');
    const seenByF = o.f!.requests.length;
    expect(await tally('/eject', 10)).toEqual({ e: 10 });
    expect(o.f!.requests.length).toBe(seenByF);
    modes.f!.mode = 'ok';
    // After baseEjection (1s) f is re-admitted and gets traffic again.
    await waitUntil(async () => (await call('/eject')).origin === 'f', 'f to be re-admitted', 10_000);
  });

  it('never sends a POST twice: a reset after the body was sent is answered 502, not retried', async () => {
    modes.g!.mode = 'reset';
    modes.h!.mode = 'reset';
    const before = o.g!.requests.length + o.h!.requests.length;
    const r = await call('/writes/order', {
      method: 'POST',
      body: '{"qty":1}',
      headers: { 'content-type': 'application/json' },
    });
    expect(r.status).toBe(502);
    expect(o.g!.requests.length + o.h!.requests.length - before).toBe(1);
  });

  it('does not retry a POST answered 503 either, but does retry a GET', async () => {
    modes.g!.mode = '503';
    modes.h!.mode = '503';
    let before = o.g!.requests.length + o.h!.requests.length;
    expect((await call('/writes/x', { method: 'POST', body: 'x' })).status).toBe(503);
    expect(o.g!.requests.length + o.h!.requests.length - before).toBe(1);
    modes.h!.mode = 'ok';
    before = o.g!.requests.length + o.h!.requests.length;
    // Whichever upstream is picked first, a GET ends on h: g's 503 is retried.
    for (let i = 0; i < 4; i++) expect((await call('/writes/y')).origin).toBe('h');
    expect(o.g!.requests.length + o.h!.requests.length - before).toBeGreaterThan(4);
  });

  it('retries a POST whose route opted in, when the body had not been sent', async () => {
    modes.g!.mode = 'ok';
    modes.h!.mode = 'ok';
    await o.g!.close();
    const before = o.h!.requests.length;
    for (let i = 0; i < 4; i++) {
      const r = await call('/opt-in/pay', { method: 'POST', body: 'x' });
      expect(r).toEqual({ status: 200, origin: 'h' });
    }
    expect(o.h!.requests.length - before).toBe(4);
  });
});
