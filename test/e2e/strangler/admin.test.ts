import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  type Origin,
  runCli,
  startGatewayCli,
  startOrigin,
  tempDir,
  waitUntil,
} from '../support/index.js';

// A strangled route on the dashboard and moved on from it: the gateway's /admin/panels carries
// the route's evidence (mode, split, mismatch rate, the fields that differ), and
// POST /admin/actions/strangler.set makes the same step as `trellis strangler set`, guard rails
// and author included, through the shared migration state.

const TOKEN = 'strangler-admin-token-0123456789';
const send = (res: ServerResponse, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

describe('strangler: the dashboard panel and the strangler.set action', () => {
  const tmp = tempDir('trellis-strangler-admin-');
  let legacy: Origin;
  let modern: Origin;
  let gw: GatewayProcess;
  const store = `sqlite:${tmp.path}/state.db`;

  beforeAll(async () => {
    legacy = await startOrigin('legacy', (req, res) =>
      send(res, { id: req.url, price: 10, origin: 'legacy' }),
    );
    modern = await startOrigin('modern', (req, res) =>
      send(res, { id: req.url, price: 11, origin: 'legacy' }),
    );
    gw = await startGatewayCli(
      tmp.write('gateway.yaml', ''),
      `listen: { port: 0 }
admin: { token: ${TOKEN} }
stores: { state: ${store} }
services:
  legacy: { upstreams: ['${legacy.url}'] }
  modern: { upstreams: ['${modern.url}'] }
routes:
  - name: prices
    match: { path: /prices/* }
    strangler: { legacy: legacy, modern: modern, mode: shadow, store: state, sticky: { header: x-user } }
`,
    );
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await Promise.all([legacy?.close(), modern?.close()]);
    tmp.cleanup();
  });

  const panel = async () => {
    const { panels } = (await (await fetch(`${gw.adminUrl}/admin/panels`)).json()) as {
      panels: { kind: string; id: string; data: Record<string, unknown> }[];
    };
    return panels.find((p) => p.id === 'strangler:prices')?.data;
  };
  const act = (body: unknown, token: string | null = TOKEN) =>
    fetch(`${gw.adminUrl}/admin/actions/strangler.set`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-trellis-author': 'ops-ann',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(body),
    });

  it('shows the shadowed route: mode, split, mismatch rate and the field that differs', async () => {
    for (let i = 0; i < 10; i++) await (await fetch(`${gw.url}/prices/${i}`)).arrayBuffer();
    const data = await waitUntil(async () => {
      const d = await panel();
      return d && (d.compared as number) >= 10 ? d : undefined;
    }, 'ten comparisons on the panel');
    expect(data).toMatchObject({ mode: 'shadow', legacy: 'legacy', modern: 'modern', mismatchRate: 1 });
    expect(data.split).toMatchObject({ legacy: 10, modern: 0 });
    expect(data.fields).toEqual([{ path: 'price', count: 10 }]);
    // Each copy has its own access line, marked shadow, beside the client's (same request id).
    const accessLines = () =>
      gw
        .output()
        .split('\n')
        .filter((l) => l.includes('"msg":"access"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const lines = await waitUntil(() => {
      const all = accessLines();
      return all.filter((l) => l.shadow === true).length >= 10 ? all : undefined;
    }, 'ten shadow access lines');
    const copies = lines.filter((l) => l.shadow === true);
    expect(copies).toHaveLength(10);
    expect(copies[0]).toMatchObject({ route: 'prices', service: 'modern', status: 200, method: 'GET' });
    const clients = new Set(lines.filter((l) => l.shadow === undefined).map((l) => l.reqId));
    for (const c of copies) expect(clients.has(c.reqId)).toBe(true);
  });

  it('refuses a call without the token, a bad body and an unknown route, and changes nothing', async () => {
    const none = await act({ route: 'prices', mode: 'canary', weight: 10 }, null);
    expect(none.status).toBe(401);
    const bad = await act({ route: 'prices', mode: 'sideways' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { detail: string }).detail).toMatch(/mode/);
    const unknown = await act({ route: 'nope', mode: 'canary', weight: 10 });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { detail: string }).detail).toContain('prices');
    expect((await panel())?.mode).toBe('shadow');
  });

  it('moves the route to a 10 % canary for every instance, recorded with its author', async () => {
    const res = await act({
      route: 'prices',
      mode: 'canary',
      weight: 10,
      reason: 'diff is understood',
      force: true,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      ok: true,
      result: { route: 'prices', before: null, now: { mode: 'canary', weight: 10, by: 'ops-ann' } },
    });
    await waitUntil(async () => (await panel())?.mode === 'canary', 'the live mode to follow the state');
    const history = await runCli(['strangler', 'history', 'prices', '--store', store]);
    expect(history.stdout).toMatch(/canary 10 %.*ops-ann.*diff is understood/s);
    // Sticky by x-user: about one key in ten goes to the modern side.
    let toModern = 0;
    for (let i = 0; i < 200; i++) {
      const before = modern.requests.length;
      await (await fetch(`${gw.url}/prices/1`, { headers: { 'x-user': `u${i}` } })).arrayBuffer();
      if (modern.requests.length > before) toModern++;
    }
    expect(toModern).toBeGreaterThan(5);
    expect(toModern).toBeLessThan(45);
  });
});
