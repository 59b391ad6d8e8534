import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryKeyValueStore } from '../stores/kv/memory.js';
import type { ConfigChange } from './api.js';
import { ConfigHttpClient } from './http-client.js';
import { ConfigRepository } from './repository.js';
import { type ConfigServer, startConfigServer } from './server.js';

const READ = 'read-token-1';
const WRITE = 'write-token-1';
let server: ConfigServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(retainChanges?: number) {
  const kv = new MemoryKeyValueStore(retainChanges === undefined ? {} : { retainChanges });
  server = await startConfigServer({ api: new ConfigRepository(kv), readToken: READ, writeToken: WRITE });
  return {
    url: server.url,
    reader: new ConfigHttpClient({ url: server.url, token: READ }),
    writer: new ConfigHttpClient({ url: server.url, token: WRITE }),
  };
}

describe('config server HTTP API', () => {
  it('separates read and write tokens (401 without, 403 with the wrong one)', async () => {
    const { url, reader, writer } = await start();
    await writer.set('shop/gateway', 'port: 1', { label: 'prod' });
    expect((await reader.get('shop/gateway', 'prod'))?.value).toEqual({ port: 1 });
    await expect(reader.set('shop/gateway', 'port: 2', { label: 'prod' })).rejects.toMatchObject({
      code: 'TRELLIS_E_CONFIG_FORBIDDEN',
      status: 403,
    });
    const anon = await fetch(`${url}/v1/config/shop/gateway?label=prod`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get('content-type')).toBe('application/problem+json');
    expect(((await anon.json()) as { code: string }).code).toBe('TRELLIS_E_CONFIG_UNAUTHORIZED');
    const wrong = await fetch(`${url}/v1/config/shop/gateway?label=prod`, {
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.status).toBe(403);
  });

  it('answers If-Match with 412 on a stale revision and sets ETag', async () => {
    const { url, writer } = await start();
    const v1 = await writer.set('a/b', '{"x":1}');
    const put = (ifMatch: string) =>
      fetch(`${url}/v1/config/a/b`, {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${WRITE}`,
          'if-match': ifMatch,
          'content-type': 'application/json',
        },
        body: '{"x":2}',
      });
    const ok = await put(`"${v1.revision}"`);
    expect(ok.status).toBe(200);
    const v2 = (await ok.json()) as { revision: number };
    expect(v2.revision).toBeGreaterThan(v1.revision);
    expect(ok.headers.get('etag')).toBe(`"${v2.revision}"`);
    const stale = await put(`"${v1.revision}"`);
    expect(stale.status).toBe(412);
    expect(await stale.json()).toMatchObject({
      code: 'TRELLIS_E_CONFIG_REVISION_MISMATCH',
      revision: v2.revision,
    });
    const metrics = await (
      await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${READ}` } })
    ).text();
    expect(metrics).toContain('trellis_config_writes_total{outcome="applied"} 2');
    expect(metrics).toContain('trellis_config_writes_total{outcome="conflict"} 1');
    expect(metrics).toContain('trellis_config_watch_streams 0');
  });

  it('refuses schema violations with 422 and the paths, and keeps the old version', async () => {
    const { writer, reader } = await start();
    await writer.setSchema('shop/', {
      type: 'object',
      properties: { port: { type: 'integer' } },
      required: ['port'],
    });
    await writer.set('shop/gw', 'port: 80');
    const err = await writer.set('shop/gw', 'port: eighty').catch((e) => e);
    expect(err).toMatchObject({ code: 'TRELLIS_E_CONFIG_SCHEMA_VIOLATION', status: 422 });
    expect(err.details.issues).toEqual([{ path: 'port', message: expect.stringMatching(/expected number/) }]);
    expect((await reader.get('shop/gw'))?.value).toEqual({ port: 80 });
    expect((await reader.listSchemas()).map((s) => s.prefix)).toEqual(['shop/']);
  });

  it('serves history and rollback with authors and messages (unicode survives headers)', async () => {
    const { writer, reader } = await start();
    const v1 = await writer.set('k/x', 'v: 1', { author: 'zoë', message: 'first — try' });
    await writer.set('k/x', 'v: 2', { author: 'bob' });
    const back = await writer.rollback('k/x', v1.revision, { author: 'ann', message: 'bad deploy' });
    expect(back.value).toEqual({ v: 1 });
    const h = await reader.history('k/x');
    expect(h.map((e) => e.author)).toEqual(['ann', 'bob', 'zoë']);
    expect(h[0]!.message).toBe(`rollback to revision ${v1.revision}: bad deploy`);
    expect(h[2]!.message).toBe('first — try');
    expect(await writer.delete('k/x')).toBe(true);
    expect(await writer.delete('k/x')).toBe(false);
    expect(await reader.get('k/x')).toBeUndefined();
  });

  it('streams changes over SSE from a revision (Last-Event-ID resume) in order', async () => {
    const { writer, reader } = await start();
    const a = await writer.set('w/a', 'v: 1');
    await writer.set('w/b', 'v: 2');
    await writer.set('x/other', 'v: 3');
    const ac = new AbortController();
    const seen: ConfigChange[] = [];
    const done = (async () => {
      for await (const c of reader.watch('w/', { fromRevision: a.revision, signal: ac.signal })) {
        seen.push(c);
        if (seen.length === 3) ac.abort();
      }
    })();
    await writer.delete('w/a');
    await writer.set('w/c', 'v: 4');
    await done;
    expect(seen.map((c) => `${c.type}:${c.key}`)).toEqual(['put:w/b', 'delete:w/a', 'put:w/c']);
    expect(seen[0]!.document?.value).toEqual({ v: 2 });
    expect(seen.map((c) => c.revision)).toEqual([...seen.map((c) => c.revision)].sort((x, y) => x - y));
  });

  it('signals a gap when the store can no longer resume from the revision', async () => {
    const { writer, reader } = await start(2);
    for (let i = 0; i < 6; i++) await writer.set('g/a', `v: ${i}`);
    const it = reader.watch('g/', { fromRevision: 1 })[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toMatchObject({ code: 'TRELLIS_E_KV_WATCH_GAP' });
  });

  it('treats a watch stream that goes silent as broken (half-open connection)', async () => {
    // A server that answers the watch and then never sends another byte, not even a heartbeat.
    const silent = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': hello\n\n');
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const c = new ConfigHttpClient({
      url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      watchIdleMs: 300,
    });
    try {
      const it = c.watch('')[Symbol.asyncIterator]();
      await expect(it.next()).rejects.toMatchObject({ code: 'TRELLIS_E_CONFIG_UNREACHABLE' });
    } finally {
      await c.close();
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  });

  it('reports an unreachable server clearly', async () => {
    const c = new ConfigHttpClient({ url: 'http://127.0.0.1:1', token: READ });
    await expect(c.get('a')).rejects.toMatchObject({ code: 'TRELLIS_E_CONFIG_UNREACHABLE' });
  });
});
