import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MemoryKeyValueStore } from '../stores/kv/memory.js';
import { ConfigRepository } from './repository.js';

const gatewaySchema = {
  type: 'object',
  required: ['port'],
  additionalProperties: false,
  properties: {
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    routes: {
      type: 'array',
      items: { type: 'object', required: ['path'], properties: { path: { type: 'string' } } },
    },
    db: { type: 'object' },
  },
};

function repo() {
  return new ConfigRepository(new MemoryKeyValueStore());
}

describe('ConfigRepository', () => {
  it('stores JSON and YAML documents per label and lists them by prefix', async () => {
    const r = repo();
    const a = await r.set('shop/gateway', 'port: 8080\n', { label: 'prod', author: 'ann', message: 'first' });
    await r.set('shop/gateway', '{"port": 9090}', { label: 'staging' });
    await r.set('shop/catalog', '{"size": 3}', { label: 'prod' });
    await r.set('other/x', 'a: 1', { label: 'prod' });
    expect(a).toMatchObject({
      key: 'shop/gateway',
      label: 'prod',
      format: 'yaml',
      value: { port: 8080 },
      author: 'ann',
    });
    expect((await r.get('shop/gateway', 'staging'))?.value).toEqual({ port: 9090 });
    const { documents } = await r.list('shop/', 'prod');
    expect(documents.map((d) => d.key)).toEqual(['shop/catalog', 'shop/gateway']);
    expect(await r.get('shop/gateway')).toBeUndefined();
  });

  it('refuses an invalid document with the exact paths, changing nothing', async () => {
    const r = repo();
    await r.setSchema('shop/gateway', gatewaySchema);
    const ok = await r.set('shop/gateway', '{"port": 8080}');
    const bad = r.set('shop/gateway', 'port: 0\nroutes:\n  - path: 3\n  - {}\nextra: true\n', {
      expectedRevision: ok.revision,
    });
    await expect(bad).rejects.toMatchObject({ code: 'TRELLIS_E_CONFIG_SCHEMA_VIOLATION' });
    const err = await bad.catch((e) => e);
    expect(err.details.issues.map((i: { path: string }) => i.path).sort()).toEqual(
      ['extra', 'port', 'routes[0].path', 'routes[1].path'].sort(),
    );
    expect((await r.get('shop/gateway'))?.revision).toBe(ok.revision);
    expect(await r.history('shop/gateway')).toHaveLength(1);
  });

  it('refuses plain values in secret-named fields and syntax errors with line and column', async () => {
    const r = repo();
    await expect(r.set('shop/db', 'db:\n  password: hunter2\n')).rejects.toThrow(
      /db\.password: holds a plain value/,
    );
    await expect(r.set('shop/db', 'a: [1,\n')).rejects.toMatchObject({
      code: 'TRELLIS_E_CONFIG_DOCUMENT_INVALID',
    });
    const ok = await r.set('shop/db', 'db:\n  password: secret://env/DB_PASSWORD\n');
    expect(ok.value).toEqual({ db: { password: 'secret://env/DB_PASSWORD' } });
  });

  it('uses registered zod schemas too (longest prefix wins)', async () => {
    const r = repo();
    r.registerSchema('shop/', z.object({ name: z.string() }));
    await expect(r.set('shop/a', '{"name": 1}')).rejects.toThrow(/name: /);
    await r.setSchema('shop/free', true);
    await expect(r.set('shop/free', '{"anything": 1}')).resolves.toBeDefined();
  });

  it('applies If-Match (expected revision) and refuses a stale one', async () => {
    const r = repo();
    const v1 = await r.set('k/a', '{"v":1}', { expectedRevision: 0 });
    await expect(r.set('k/a', '{"v":9}', { expectedRevision: 0 })).rejects.toMatchObject({
      code: 'TRELLIS_E_CONFIG_REVISION_MISMATCH',
      status: 412,
    });
    const v2 = await r.set('k/a', '{"v":2}', { expectedRevision: v1.revision });
    await expect(r.set('k/a', '{"v":3}', { expectedRevision: v1.revision })).rejects.toThrow(
      `expected revision ${v1.revision} but it is at revision ${v2.revision}`,
    );
    expect((await r.get('k/a'))?.value).toEqual({ v: 2 });
  });

  it('keeps a full history with author, message and time, including deletions, and rolls back', async () => {
    const r = repo();
    const v1 = await r.set('k/a', 'v: 1', { author: 'ann', message: 'one' });
    const v2 = await r.set('k/a', 'v: 2', { author: 'bob', message: 'two' });
    expect(await r.delete('k/a', { author: 'cat', message: 'gone' })).toBe(true);
    expect(await r.get('k/a')).toBeUndefined();
    expect((await r.list('k/')).documents).toEqual([]);
    const h = await r.history('k/a');
    expect(h.map((e) => [e.author, e.message, e.deleted])).toEqual([
      ['cat', 'gone', true],
      ['bob', 'two', false],
      ['ann', 'one', false],
    ]);
    expect(h[1]).toMatchObject({ revision: v2.revision, content: 'v: 2' });
    expect(Date.parse(h[2]!.time)).toBeGreaterThan(Date.now() - 60_000);
    const back = await r.rollback('k/a', v1.revision, { author: 'dan' });
    expect(back).toMatchObject({
      value: { v: 1 },
      message: `rollback to revision ${v1.revision}`,
      author: 'dan',
    });
    expect(await r.history('k/a')).toHaveLength(4);
    await expect(r.rollback('k/a', h[0]!.revision)).rejects.toThrow(/is a deletion/);
    await expect(r.rollback('k/a', 999)).rejects.toMatchObject({
      code: 'TRELLIS_E_CONFIG_REVISION_NOT_FOUND',
    });
  });

  it('watches changes under a prefix and label in order, resuming from a revision', async () => {
    const r = repo();
    const ac = new AbortController();
    const first = await r.set('w/a', 'v: 1', { label: 'prod' });
    await r.set('w/b', 'v: 2', { label: 'prod' });
    await r.set('w/c', 'v: 3', { label: 'other' });
    await r.delete('w/a', { label: 'prod' });
    const seen: string[] = [];
    for await (const c of r.watch('w/', { label: 'prod', fromRevision: first.revision, signal: ac.signal })) {
      seen.push(`${c.type}:${c.key}`);
      if (seen.length === 2) ac.abort();
    }
    expect(seen).toEqual(['put:w/b', 'delete:w/a']);
  });

  it('rejects malformed keys and labels', async () => {
    const r = repo();
    await expect(r.set('a@b', '{}')).rejects.toMatchObject({ code: 'TRELLIS_E_CONFIG_KEY_INVALID' });
    await expect(r.set('a//b', '{}')).rejects.toMatchObject({ code: 'TRELLIS_E_CONFIG_KEY_INVALID' });
    await expect(r.get('a', 'bad label')).rejects.toMatchObject({ code: 'TRELLIS_E_CONFIG_LABEL_INVALID' });
    for (const key of ['x/../../schemas/shop', 'a/./b', '..', '.']) {
      await expect(r.set(key, '{}')).rejects.toMatchObject({ code: 'TRELLIS_E_CONFIG_KEY_INVALID' });
    }
    // A dot inside a segment is fine.
    await expect(r.set('app/.env', '{}')).resolves.toMatchObject({ key: 'app/.env' });
  });

  it('binds a prefix to a named validator, stored with the binding; unknown names are refused', async () => {
    const kv = new MemoryKeyValueStore();
    const noPorts = {
      validate: (content: string, name: string) =>
        content.includes('port')
          ? [{ line: 1, column: 1, path: 'port', message: `no ports in ${name}` }]
          : [],
    };
    const r = new ConfigRepository(kv, { validators: { 'no-ports': noPorts } });
    await expect(r.setSchema('svc/', undefined, { validator: 'nope' })).rejects.toMatchObject({
      code: 'TRELLIS_E_CONFIG_VALIDATOR_UNKNOWN',
    });
    await r.setSchema('svc/', undefined, { validator: 'no-ports' });
    await expect(r.set('svc/a', 'port: 1\n')).rejects.toMatchObject({
      code: 'TRELLIS_E_CONFIG_SCHEMA_VIOLATION',
      message: expect.stringContaining('svc/a:1:1 port: no ports in svc/a'),
    });
    await expect(r.set('svc/a', 'host: x\n')).resolves.toMatchObject({ revision: expect.any(Number) });
    // Another process over the same store without that validator refuses rather than skip the check.
    const other = new ConfigRepository(kv);
    await expect(other.set('svc/b', 'host: y\n')).rejects.toMatchObject({
      code: 'TRELLIS_E_CONFIG_VALIDATOR_UNKNOWN',
    });
    expect(await r.get('svc/b')).toBeUndefined();
  });
});
