import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/logger.js';
import { MemoryEventStore } from '../stores/events/memory.js';
import { commandBus, queryBus } from './bus.js';
import { aggregateStream, handleCommand } from './decider.js';
import { cqrsHttpHandler } from './http.js';
import { idempotency } from './idempotency.js';
import { counterDecider } from './testing/fixtures.js';

const store = new MemoryEventStore();
const commands = commandBus()
  .use(idempotency())
  .register('increment', (p) => {
    const { id, by } = p as { id: string; by: number };
    return handleCommand(store, id, { type: 'Increment', by }, counterDecider);
  })
  .register('contended', async () => {
    // Every attempt loses the race: the conflict survives the retries.
    const rival = {
      ...counterDecider,
      async decide(c: { type: 'Increment'; by: number }, s: { value: number; closed: boolean }) {
        await store.append('hot', [{ type: 'Incremented', data: { by: 1 } }]);
        return counterDecider.decide(c, s);
      },
    };
    return handleCommand(store, 'hot', { type: 'Increment', by: 1 }, rival, { maxRetries: 1 });
  })
  .register('buggy', () => {
    throw new Error('secret internals');
  });
const queries = queryBus().register('counter', async (p) => {
  const { id } = p as { id: string };
  return (await aggregateStream(store, id, counterDecider)).state;
});

let server: Server;
let base: string;
const logged: { obj: Record<string, unknown>; msg: string }[] = [];
const logger = Object.assign(silentLogger(), {
  warn: (obj: Record<string, unknown>, msg: string) => void logged.push({ obj, msg }),
}) as unknown as ReturnType<typeof silentLogger>;
beforeAll(async () => {
  server = createServer(
    cqrsHttpHandler({
      commands,
      queries,
      basePath: '/api',
      logger,
      principal: (req) =>
        req.headers['x-user'] ? { sub: req.headers['x-user'], tenant: req.headers['x-tenant'] } : undefined,
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

const post = (name: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/commands/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('CQRS over HTTP', () => {
  it('answers a command with 202 and its position, and a query with 200', async () => {
    const res = await post('increment', { id: 'h1', by: 4 });
    expect(res.status).toBe(202);
    const body = await res.json();
    expect(body).toEqual({ position: await store.headPosition(), nextVersion: 1 });
    const q = await fetch(`${base}/queries/counter?id=h1`);
    expect(q.status).toBe(200);
    expect(await q.json()).toEqual({ value: 4, closed: false });
  });

  it('honours the Idempotency-Key header', async () => {
    const a = await (await post('increment', { id: 'h2', by: 1 }, { 'idempotency-key': 'abc' })).json();
    const b = await (await post('increment', { id: 'h2', by: 1 }, { 'idempotency-key': 'abc' })).json();
    expect(b).toEqual(a);
    expect((await aggregateStream(store, 'h2', counterDecider)).version).toBe(1);
  });

  it('scopes Idempotency-Key by principal and tenant: another caller reusing a key runs their own command', async () => {
    const as = (user: string, tenant: string) => ({
      'idempotency-key': 'shared-key',
      'x-user': user,
      'x-tenant': tenant,
    });
    const ann = await post('increment', { id: 'h5', by: 1 }, as('ann', 't1'));
    const bob = await post('increment', { id: 'h5', by: 1 }, as('bob', 't1'));
    const annOther = await post('increment', { id: 'h5', by: 1 }, as('ann', 't2'));
    expect([ann.status, bob.status, annOther.status]).toEqual([202, 202, 202]);
    const positionOf = async (r: Response) => ((await r.json()) as { position: number }).position;
    const positions = [await positionOf(ann), await positionOf(bob), await positionOf(annOther)];
    expect(new Set(positions).size).toBe(3);
    expect((await aggregateStream(store, 'h5', counterDecider)).state.value).toBe(3);
    // Ann's retry still gets Ann's first answer.
    expect(await positionOf(await post('increment', { id: 'h5', by: 1 }, as('ann', 't1')))).toBe(
      positions[0],
    );
  });

  it('answers 422 when an Idempotency-Key is reused with a different payload, running nothing', async () => {
    const headers = { 'idempotency-key': 'k-422', 'x-user': 'ann' };
    expect((await post('increment', { id: 'h6', by: 1 }, headers)).status).toBe(202);
    const again = await post('increment', { id: 'h6', by: 2 }, headers);
    expect(again.status).toBe(422);
    expect(await again.json()).toMatchObject({ code: 'TRELLIS_E_IDEMPOTENCY_KEY_REUSED', status: 422 });
    // Key order in the JSON body does not matter: the same payload is the same payload.
    expect((await post('increment', { by: 1, id: 'h6' }, headers)).status).toBe(202);
    expect((await aggregateStream(store, 'h6', counterDecider)).state.value).toBe(1);
  });

  it('answers an unknown name with 404 without listing the known ones, and logs them', async () => {
    logged.length = 0;
    const res = await post('nope', {});
    expect(res.status).toBe(404);
    const text = await res.text();
    for (const name of ['increment', 'contended', 'buggy']) expect(text).not.toContain(name);
    expect(logged.at(-1)?.obj).toMatchObject({ known: ['increment', 'contended', 'buggy'] });
    const q = await fetch(`${base}/queries/nope`);
    expect(q.status).toBe(404);
    expect(await q.text()).not.toContain('counter');
  });

  it('answers 422 for a rejected command, 409 for a lasting conflict, as problem details', async () => {
    const rejected = await post('increment', { id: 'h3', by: -1 });
    expect(rejected.status).toBe(422);
    expect(rejected.headers.get('content-type')).toBe('application/problem+json');
    expect(await rejected.json()).toMatchObject({ code: 'TRELLIS_E_COMMAND_REJECTED', status: 422 });
    const conflict = await post('contended', {});
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toMatchObject({
      code: 'TRELLIS_E_EVENT_VERSION_CONFLICT',
      details: { streamId: 'hot' },
    });
  });

  it('never leaks a handler bug, and answers bad requests clearly', async () => {
    const bug = await post('buggy', {});
    expect(bug.status).toBe(500);
    expect(await bug.text()).not.toContain('secret');
    expect((await post('increment', '{nope')).status).toBe(400);
    expect((await post('unknown', {})).status).toBe(404);
    expect((await fetch(`${base}/commands/increment`)).status).toBe(405);
    expect((await fetch(`${base}/elsewhere`)).status).toBe(404);
  });
});
