import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Gateway, startGateway } from '../gateway/gateway.js';
import { gatewayTypes } from '../gateway/types.js';
import { defineHandler } from '../handlers/types.js';
import type { Handler, Middleware } from '../http/types.js';
import { defineMiddleware } from '../middlewares/types.js';
import { memoryProvider } from './providers/memory.js';
import { extendTypes } from './registry.js';

// A handler and a middleware that show themselves on the admin API: what every pattern's part
// (a strangler route, a cache) does to get a dashboard panel and operator actions.
const counterHandler = defineHandler({
  type: 'counter',
  options: z.strictObject({ label: z.string() }),
  create(o, deps) {
    let hits = 0;
    const handler: Handler = (ctx) => {
      hits++;
      ctx.res.end(String(hits));
    };
    return Object.assign(handler, {
      panels: [{ kind: 'counter', id: `counter:${deps.routeName}`, title: o.label, view: () => ({ hits }) }],
      actions: [
        {
          name: `counter.reset`,
          describe: 'sets the count back to 0',
          run: (_body: unknown, by: { author: string }) => {
            hits = 0;
            return { hits, by: by.author };
          },
        },
      ],
    });
  },
});
const tagMiddleware = defineMiddleware({
  type: 'tag',
  options: z.strictObject({}),
  create: (_o, deps) =>
    Object.assign(((next) => next) as Middleware, {
      panels: [{ kind: 'tag', id: `tag:${deps.name}`, title: `Tag ${deps.name}`, view: () => 'on' }],
    }),
});
const types = extendTypes(gatewayTypes, { handlers: [counterHandler], middlewares: [tagMiddleware] });

const config = (label: string, token?: string) => ({
  listen: { host: '127.0.0.1', port: 0 },
  admin: { host: '127.0.0.1', port: 0, ...(token ? { token } : {}) },
  middlewares: { tagged: { tag: {} } },
  routes: [{ name: 'count', match: { path: '/count' }, middlewares: ['tagged'], counter: { label } }],
});

describe('runtime: handlers and middlewares carry panels and actions', () => {
  let gw: Gateway | undefined;
  afterEach(async () => {
    await gw?.stop(1_000);
    gw = undefined;
  });

  it('shows the active generation’s panels, runs its actions with the token, and follows reloads', async () => {
    const token = 'runtime-test-admin-token';
    const provider = memoryProvider(config('Hits v1', token));
    gw = await startGateway({ provider, types });
    const at = (port: number | undefined, path: string) => `http://127.0.0.1:${port}${path}`;
    await fetch(at(gw.ports.main, '/count'));
    await fetch(at(gw.ports.main, '/count'));

    const panels = async () =>
      (
        (await (await fetch(at(gw!.ports.admin, '/admin/panels'))).json()) as {
          panels: { id: string; title: string; data: unknown }[];
        }
      ).panels;
    expect(await panels()).toEqual([
      expect.objectContaining({ id: 'tag:tagged', data: 'on' }),
      expect.objectContaining({ id: 'counter:count', title: 'Hits v1', data: { hits: 2 } }),
    ]);

    const reset = await fetch(at(gw.ports.admin, '/admin/actions/counter.reset'), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'x-trellis-author': 'ops' },
    });
    expect(await reset.json()).toEqual({ ok: true, result: { hits: 0, by: 'ops' } });

    // A reload replaces the instances: the panels are the new generation's.
    expect((await provider.set(config('Hits v2', token))).ok).toBe(true);
    expect((await panels()).find((p) => p.id === 'counter:count')).toMatchObject({
      title: 'Hits v2',
      data: { hits: 0 },
    });
  });

  it('refuses a short admin.token with a message saying how to make one', async () => {
    await expect(startGateway({ provider: memoryProvider(config('x', 'short')), types })).rejects.toThrow(
      /admin.token is too short.*openssl rand -hex 16/,
    );
  });
});
