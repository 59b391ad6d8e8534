import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrellisError } from '../core/errors.js';
import type { AdminAction, AdminPanel } from './panels.js';
import { type AdminServer, type AdminSource, createAdminServer } from './server.js';

const TOKEN = 'a-long-enough-admin-token';

function source(extra: Partial<AdminSource>): AdminSource {
  return {
    registry: new Registry(),
    ready: () => true,
    routes: () => ({}),
    services: () => ({}),
    config: () => ({}),
    ...extra,
  };
}

async function start(extra: Partial<AdminSource>): Promise<{ admin: AdminServer; base: string }> {
  const admin = createAdminServer(source(extra));
  const { port } = await admin.listen('127.0.0.1', 0);
  return { admin, base: `http://127.0.0.1:${port}` };
}

describe('admin extension point: panels and actions', () => {
  let mode = 'legacy';
  const calls: { body: unknown; author: string }[] = [];
  const panels: AdminPanel[] = [
    { kind: 'strangler', id: 'strangler:inventory', title: 'Inventory migration', view: () => ({ mode }) },
    {
      kind: 'broken',
      id: 'broken:1',
      title: 'Broken part',
      view: () => {
        throw new Error('store is away');
      },
    },
    { kind: 'slow', id: 'slow:1', title: 'Slow part', view: () => new Promise(() => {}) },
  ];
  const actions: AdminAction[] = [
    {
      name: 'strangler.set',
      describe: 'set a route mode: { mode }',
      run(body, by) {
        calls.push({ body, author: by.author });
        const next = (body as { mode?: unknown }).mode;
        if (typeof next !== 'string') {
          throw new TrellisError('TRELLIS_E_STRANGLER_INVALID', 'mode must be a string', { status: 422 });
        }
        mode = next;
        return { mode };
      },
    },
    {
      name: 'explodes',
      describe: 'fails with a plain error',
      run() {
        throw new Error('disk full');
      },
    },
  ];
  let main: { admin: AdminServer; base: string };
  let peer: { admin: AdminServer; base: string };
  let noToken: { admin: AdminServer; base: string };

  beforeAll(async () => {
    peer = await start({
      panels: () => [
        { kind: 'pipeline', id: 'pipeline:orders', title: 'Orders', view: () => ({ stages: 3 }) },
      ],
      // A peer that names the main process back must not make the two ask each other forever.
      peers: ['http://127.0.0.1:1'],
    });
    main = await start({
      panels: () => panels,
      actions: () => actions,
      token: TOKEN,
      peers: [peer.base, 'http://127.0.0.1:1'],
    });
    noToken = await start({ actions: () => actions });
  });
  afterAll(async () => {
    await Promise.all([main.admin.close(), peer.admin.close(), noToken.admin.close()]);
  });

  const post = (base: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) =>
    fetch(base + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...init.headers },
      body: init.body ?? '{}',
    });

  it('shows every local panel, a failing or slow view as an error, and the peers’ panels', async () => {
    const started = Date.now();
    const res = await fetch(`${main.base}/admin/panels`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      panels: { id: string; origin: string; data?: unknown; error?: string }[];
      peers: { url: string; ok: boolean; error?: string }[];
    };
    expect(Date.now() - started).toBeLessThan(5_000);
    const byId = Object.fromEntries(body.panels.map((p) => [p.id, p]));
    expect(byId['strangler:inventory']).toMatchObject({ origin: 'local', data: { mode: 'legacy' } });
    expect(byId['broken:1']?.error).toBe('store is away');
    expect(byId['slow:1']?.error).toMatch(/longer than/);
    expect(byId['pipeline:orders']).toMatchObject({ origin: peer.base, data: { stages: 3 } });
    expect(body.peers.find((p) => p.url === peer.base)).toMatchObject({ ok: true });
    expect(body.peers.find((p) => p.url === 'http://127.0.0.1:1')).toMatchObject({ ok: false });
  });

  it('asks a peer for its own panels only (?local=1), so peers naming each other never loop', async () => {
    const body = (await (await fetch(`${peer.base}/admin/panels?local=1`)).json()) as Record<string, unknown>;
    expect(body.peers).toBeUndefined();
    expect((body.panels as unknown[]).length).toBe(1);
  });

  it('lists the actions and whether they are enabled', async () => {
    const on = (await (await fetch(`${main.base}/admin/actions`)).json()) as Record<string, unknown>;
    expect(on).toEqual({
      enabled: true,
      actions: [
        { name: 'strangler.set', describe: 'set a route mode: { mode }' },
        { name: 'explodes', describe: 'fails with a plain error' },
      ],
    });
    const off = (await (await fetch(`${noToken.base}/admin/actions`)).json()) as Record<string, unknown>;
    expect(off.enabled).toBe(false);
  });

  it('refuses actions when no admin.token is set, whatever is sent', async () => {
    const res = await post(noToken.base, '/admin/actions/strangler.set', {
      body: '{"mode":"canary"}',
      headers: { authorization: 'Bearer anything' },
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { code: string }).code).toBe('TRELLIS_E_ADMIN_ACTIONS_DISABLED');
  });

  it.each([
    ['no header', {}],
    ['a wrong token', { authorization: 'Bearer a-long-enough-admin-tokeX' }],
    ['a shorter token', { authorization: 'Bearer a-long' }],
    ['another scheme', { authorization: `Basic ${TOKEN}` }],
  ])('answers 401 to %s', async (_what, headers) => {
    const res = await post(main.base, '/admin/actions/strangler.set', { body: '{"mode":"canary"}', headers });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(((await res.json()) as { code: string }).code).toBe('TRELLIS_E_ADMIN_UNAUTHORIZED');
    expect(mode).toBe('legacy');
  });

  const auth = { authorization: `Bearer ${TOKEN}` };

  it('runs an action with the token, the body and the author', async () => {
    const res = await post(main.base, '/admin/actions/strangler.set', {
      body: '{"mode":"shadow"}',
      headers: { ...auth, 'x-trellis-author': 'ana' },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, result: { mode: 'shadow' } });
    expect(calls.at(-1)).toEqual({ body: { mode: 'shadow' }, author: 'ana' });
    const panelsNow = (await (await fetch(`${main.base}/admin/panels`)).json()) as {
      panels: { id: string; data?: unknown }[];
    };
    expect(panelsNow.panels.find((p) => p.id === 'strangler:inventory')?.data).toEqual({ mode: 'shadow' });
  });

  it.each([
    ['an unknown action', '/admin/actions/nope', '{}', {}, 404, 'TRELLIS_E_ADMIN_ACTION_UNKNOWN'],
    [
      'a name with odd characters',
      '/admin/actions/..%2Fetc',
      '{}',
      {},
      404,
      'TRELLIS_E_ADMIN_ACTION_UNKNOWN',
    ],
    [
      'a body that is not JSON',
      '/admin/actions/strangler.set',
      '{mode:',
      {},
      400,
      'TRELLIS_E_ADMIN_ACTION_INVALID',
    ],
    [
      'a body of another type',
      '/admin/actions/strangler.set',
      'mode=canary',
      { 'content-type': 'application/x-www-form-urlencoded' },
      415,
      'TRELLIS_E_ADMIN_ACTION_INVALID',
    ],
    [
      'a body over 64 KiB',
      '/admin/actions/strangler.set',
      `"${'x'.repeat(70_000)}"`,
      {},
      413,
      'TRELLIS_E_ADMIN_ACTION_INVALID',
    ],
    [
      'options the action refuses',
      '/admin/actions/strangler.set',
      '{"mode":3}',
      {},
      422,
      'TRELLIS_E_STRANGLER_INVALID',
    ],
    ['an action that fails', '/admin/actions/explodes', '{}', {}, 500, 'TRELLIS_E_ADMIN_ACTION_FAILED'],
  ])('answers %s with a problem', async (_what, path, body, headers, status, code) => {
    const res = await post(main.base, path, { body, headers: { ...auth, ...headers } });
    expect(res.status).toBe(status);
    const problem = (await res.json()) as { code: string; detail: string };
    expect(problem.code).toBe(code);
    expect(problem.detail.length).toBeGreaterThan(10);
  });

  it('keeps every other path read-only', async () => {
    const res = await post(main.base, '/admin/config', { headers: auth });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    const actions = await fetch(`${main.base}/admin/actions/strangler.set`, { method: 'PUT', headers: auth });
    expect(actions.status).toBe(405);
    expect(actions.headers.get('allow')).toBe('POST');
  });
});
