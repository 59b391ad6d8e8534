import { afterEach, describe, expect, it } from 'vitest';
import { type ConfigClient, createConfigClient } from '../../config/client.js';
import { ConfigRepository } from '../../config/repository.js';
import { type ConfigServer, startConfigServer } from '../../config/server.js';
import { silentLogger } from '../../core/logger.js';
import { createMetricsRegistry } from '../../core/metrics.js';
import { MemoryKeyValueStore } from '../../stores/kv/memory.js';
import { MemoryLeaseStore } from '../../stores/lease/memory.js';
import { openMessageQueue } from '../../stores/queue/index.js';
import type { KeyValueStore, MessageQueue } from '../../stores/types.js';
import { OPENAPI } from './openapi.js';
import { type PlatformApi, startPlatformApi } from './server.js';

const TOKEN = 'test-token';
let api: PlatformApi | undefined;
let queue: MessageQueue | undefined;
afterEach(async () => {
  await api?.close();
  await queue?.close();
  api = undefined;
});

async function start(
  state: KeyValueStore = new MemoryKeyValueStore(),
  storeTimeoutMs = 2_000,
  config?: ConfigClient,
) {
  queue = await openMessageQueue('memory:');
  api = await startPlatformApi(
    {
      token: TOKEN,
      state,
      queue,
      locks: new MemoryLeaseStore(),
      config,
      secrets: { db: 'secret://env/API_TEST_SECRET' },
      instanceId: 'test@host:1',
      storeTimeoutMs,
      appState: () => 'healthy',
      logger: silentLogger(),
      registry: createMetricsRegistry({ defaults: false }),
      env: { API_TEST_SECRET: 's3cret' },
    },
    '127.0.0.1',
    0,
  );
  return (path: string, init: RequestInit = {}) =>
    fetch(`${api!.url}${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, ...init.headers } });
}

describe('platform API', () => {
  it('state: put, get with ETag, compare-and-set with If-Match (412 on a stale revision), create-only, delete', async () => {
    const call = await start();
    expect((await call('/v1/state/a/b')).status).toBe(404);
    const put = await call('/v1/state/a/b', { method: 'PUT', body: '{"n":1}' });
    expect(put.status).toBe(200);
    const etag = put.headers.get('etag')!;
    const got = await call('/v1/state/a/b');
    expect(await got.json()).toEqual({ n: 1 });
    expect(got.headers.get('etag')).toBe(etag);
    expect(
      (await call('/v1/state/a/b', { method: 'PUT', body: '2', headers: { 'if-match': etag } })).status,
    ).toBe(200);
    const stale = await call('/v1/state/a/b', { method: 'PUT', body: '3', headers: { 'if-match': etag } });
    expect(stale.status).toBe(412);
    expect(((await stale.json()) as { code: string }).code).toBe('TRELLIS_E_KV_CONFLICT');
    expect(
      (await call('/v1/state/a/b', { method: 'PUT', body: '4', headers: { 'if-none-match': '*' } })).status,
    ).toBe(412);
    expect((await call('/v1/state/a/b', { method: 'PUT', body: 'not json' })).status).toBe(400);
    expect((await call('/v1/state/a/b', { method: 'DELETE' })).status).toBe(204);
    expect((await call('/v1/state/a/b', { method: 'DELETE' })).status).toBe(404);
  });

  it('state bulk: reads many keys in order (null for a missing one), writes many with a compare-and-set each', async () => {
    const call = await start();
    const post = (path: string, body: unknown) => call(path, { method: 'POST', body: JSON.stringify(body) });
    const put = await post('/v1/state/bulk-put', {
      items: [
        { key: 'b/1', value: { n: 1 } },
        { key: 'b/2', value: [2] },
        { key: 'b/3', value: 'three', ifMatch: 0 },
      ],
    });
    expect(put.status).toBe(200);
    const written = ((await put.json()) as { items: { key: string; revision: number }[] }).items;
    expect(written.map((i) => i.key)).toEqual(['b/1', 'b/2', 'b/3']);
    expect(new Set(written.map((i) => i.revision)).size).toBe(3);

    const got = await post('/v1/state/bulk', { keys: ['b/2', 'nope', 'b/1'] });
    expect(got.status).toBe(200);
    expect(await got.json()).toEqual({
      items: [
        { key: 'b/2', value: [2], revision: written[1]!.revision },
        { key: 'nope', value: null, revision: null },
        { key: 'b/1', value: { n: 1 }, revision: written[0]!.revision },
      ],
    });
    // The single-key API sees the same values.
    expect(await (await call('/v1/state/b/3')).json()).toBe('three');

    // One stale compare-and-set fails alone, with its own 412; the others are written.
    const mixed = await post('/v1/state/bulk-put', {
      items: [
        { key: 'b/1', value: 10, ifMatch: written[0]!.revision },
        { key: 'b/2', value: 20, ifMatch: written[0]!.revision },
      ],
    });
    const outcomes = ((await mixed.json()) as { items: Record<string, unknown>[] }).items;
    expect(outcomes[0]).toMatchObject({ key: 'b/1' });
    expect(outcomes[0]!.revision).toBeGreaterThan(written[2]!.revision);
    expect(outcomes[1]).toMatchObject({ key: 'b/2', status: 412, code: 'TRELLIS_E_KV_CONFLICT' });
    expect(await (await call('/v1/state/b/2')).json()).toEqual([2]);

    // Bad bodies say what is wrong; GET/PUT on a key named "bulk" is still a plain key.
    const bad = await post('/v1/state/bulk', { keys: [] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { detail: string }).detail).toMatch(/keys: .*"keys": \["a", "b"\]/);
    const missingValue = await post('/v1/state/bulk-put', { items: [{ key: 'x' }] });
    expect(((await missingValue.json()) as { detail: string }).detail).toContain('items.0.value');
    expect((await post('/v1/state/bulk', { keys: Array(1001).fill('k') })).status).toBe(400);
    expect((await call('/v1/state/bulk', { method: 'PUT', body: '{"plain":true}' })).status).toBe(200);
    expect(await (await call('/v1/state/bulk')).json()).toEqual({ plain: true });
    // A malformed %-escape is a 400, not a crash.
    expect((await call('/v1/state/%E0%A4%A')).status).toBe(400);
  });

  it('refuses calls without the bearer token, serves the OpenAPI document without one', async () => {
    await start();
    const res = await fetch(`${api!.url}/v1/state/x`, { headers: { authorization: 'Bearer wrong-token' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    const doc = await fetch(`${api!.url}/v1/openapi.json`).then((r) => r.json());
    expect(doc).toEqual(JSON.parse(JSON.stringify(OPENAPI)));
  });

  it('locks: acquire with a fencing token, 409 for another holder, renew, release; a new holder gets a larger token', async () => {
    const call = await start();
    const a = await call('/v1/locks/leader', {
      method: 'POST',
      body: JSON.stringify({ holder: 'a', ttlMs: 5_000 }),
    });
    expect(a.status).toBe(200);
    const lease = (await a.json()) as { token: number; holder: string };
    expect(lease.holder).toBe('a');
    const b = await call('/v1/locks/leader', { method: 'POST', body: JSON.stringify({ holder: 'b' }) });
    expect(b.status).toBe(409);
    expect(((await b.json()) as { holder: string }).holder).toBe('a');
    const renewed = await call('/v1/locks/leader', {
      method: 'PUT',
      body: JSON.stringify({ holder: 'a', token: lease.token }),
    });
    expect(renewed.status).toBe(200);
    expect(
      (
        await call('/v1/locks/leader', {
          method: 'PUT',
          body: JSON.stringify({ holder: 'b', token: lease.token }),
        })
      ).status,
    ).toBe(409);
    expect((await call(`/v1/locks/leader?holder=a&token=${lease.token}`, { method: 'DELETE' })).status).toBe(
      204,
    );
    const next = (await (await call('/v1/locks/leader', { method: 'POST', body: '{}' })).json()) as {
      token: number;
      holder: string;
    };
    expect(next.holder).toBe('test@host:1');
    expect(next.token).toBeGreaterThan(lease.token);
  });

  it('publish hands the body to the queue (Idempotency-Key de-duplicates); secrets resolve by name', async () => {
    const call = await start();
    const first = await call('/v1/publish/orders', {
      method: 'POST',
      body: '{"o":1}',
      headers: { 'idempotency-key': 'k1' },
    });
    expect(first.status).toBe(202);
    const again = (await (
      await call('/v1/publish/orders', {
        method: 'POST',
        body: '{"o":1}',
        headers: { 'idempotency-key': 'k1' },
      })
    ).json()) as { duplicate: boolean };
    expect(again.duplicate).toBe(true);
    const received: string[] = [];
    const consumer = await queue!.consume('orders', 'g', async (d) => {
      received.push(d.payload);
    });
    await expect.poll(() => received, { timeout: 10_000 }).toEqual(['{"o":1}']);
    await consumer.stop();
    expect(await (await call('/v1/secrets/db')).json()).toEqual({ name: 'db', value: 's3cret' });
    expect((await call('/v1/secrets/nope')).status).toBe(404);
    expect((await call('/v1/config/x')).status).toBe(404);
  });

  it('a store outage: failing and hanging stores answer 503 problems with Retry-After, never hang', async () => {
    const down = new MemoryKeyValueStore();
    down.get = () => Promise.reject(new Error('connection refused'));
    down.put = () => new Promise(() => undefined); // hangs forever
    const call = await start(down, 300);
    const failed = await call('/v1/state/k');
    expect(failed.status).toBe(503);
    expect(failed.headers.get('retry-after')).toBe('1');
    expect(((await failed.json()) as { code: string }).code).toBe('TRELLIS_E_STORE_UNAVAILABLE');
    const started = Date.now();
    const hung = await call('/v1/state/k', { method: 'PUT', body: '1' });
    expect(hung.status).toBe(503);
    expect(((await hung.json()) as { detail: string }).detail).toContain('did not answer within 300 ms');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('platform API configuration', () => {
  let server: ConfigServer | undefined;
  let client: ConfigClient | undefined;
  afterEach(async () => {
    await client?.close();
    await server?.close();
  });

  it('serves the document with secrets resolved, streams changes, and says when it serves last-known-good', async () => {
    const repo = new ConfigRepository(new MemoryKeyValueStore());
    await repo.set('orders/db', 'host: db1\npassword: secret://env/API_TEST_SECRET\n');
    server = await startConfigServer({ api: repo, readToken: 'r', writeToken: 'w' });
    client = await createConfigClient({
      source: server.url,
      token: 'r',
      env: { API_TEST_SECRET: 's3cret' },
      backoff: { initialMs: 20, maxMs: 100 },
    });
    const call = await start(undefined, 2_000, client);
    const first = await call('/v1/config/orders/db');
    expect(first.headers.get('x-trellis-config-source')).toBe('store');
    expect(await first.json()).toMatchObject({
      key: 'orders/db',
      value: { host: 'db1', password: 's3cret' },
      source: 'store',
    });

    // The watch stream: the document now, then the next revision.
    const stream = await call('/v1/config/orders/db?watch');
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    const reader = stream.body!.getReader();
    let text = '';
    const readUntil = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended: ${text}`);
        text += new TextDecoder().decode(value);
      }
    };
    await readUntil(/"host":"db1"/);
    await repo.set('orders/db', 'host: db2\n');
    await readUntil(/"host":"db2"/);
    await reader.cancel();

    // The store goes away: the last copy is still served, marked stale.
    await server.close();
    server = undefined;
    await expect.poll(() => client!.health().ok, { timeout: 10_000 }).toBe(false);
    const stale = (await (await call('/v1/config/orders/db')).json()) as {
      value: { host: string };
      stale: boolean;
      source: string;
    };
    expect(stale.value.host).toBe('db2');
    expect(stale.stale).toBe(true);
  });
});
