import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openKeyValueStore } from '../stores/kv/index.js';
import { serviceUrl } from '../testing/services.js';
import { type Sidecar, startSidecar } from './sidecar.js';

/**
 * The platform API of a real sidecar (its app a real child process) on the networked building
 * blocks, each API on every backend it accepts: state (compare-and-set, bulk) on PostgreSQL,
 * Redis and etcd; pub/sub (push delivery, a retry after a failed delivery) on Redis and NATS;
 * locks with fencing tokens on PostgreSQL, Redis and etcd. (SQLite, the default, is covered by
 * the e2e tests; there is no PostgreSQL MessageQueue.) Every run uses its own keys, topics and
 * lock names, so runs never see each other's data in the shared servers.
 */

const [postgres, redis, nats, etcd] = await Promise.all(
  (['postgres', 'redis', 'nats', 'etcd'] as const).map((s) => serviceUrl(s)),
);
const run = `r${process.pid}x${Date.now().toString(36)}`;
const dir = mkdtempSync(join(tmpdir(), 'trellis-sidecar-int-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The app: hands the API's address and token (which only the app gets) to the test through a
// file, and records each delivery, failing the first one of every message with 500.
const APP = join(dir, 'app.mjs');
writeFileSync(
  APP,
  `import { appendFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
writeFileSync(process.env.API_FILE, JSON.stringify({ url: process.env.TRELLIS_SIDECAR_URL, token: process.env.TRELLIS_SIDECAR_TOKEN }));
const seen = new Set();
createServer((req, res) => {
  if (req.url !== '/deliveries') return res.end('ok');
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const id = req.headers['x-trellis-message-id'];
    appendFileSync(process.env.DELIVERED_FILE, JSON.stringify({ body, count: req.headers['x-trellis-delivery-count'] }) + '\\n');
    if (!seen.has(id)) { seen.add(id); res.statusCode = 500; return res.end('not yet'); }
    res.statusCode = 204;
    res.end();
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`,
);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

interface Backends {
  state?: string;
  pubsub?: string;
  locks?: string;
}

/** A sidecar on `backends` (SQLite beside its file for the rest); resolves with a caller of its API. */
async function sidecarOn(name: string, backends: Backends) {
  const file = join(dir, `${name}.yaml`);
  const apiFile = join(dir, `${name}.api.json`);
  const delivered = join(dir, `${name}.delivered.jsonl`);
  writeFileSync(delivered, '');
  const lines = [
    `app: { name: ${name}, port: ${await freePort()}, healthPath: /healthz, healthInterval: 200ms,`,
    `  env: { API_FILE: "${apiFile}", DELIVERED_FILE: "${delivered}" } }`,
    'listen: { host: 127.0.0.1, port: 0 }',
    'api: { port: 0, storeTimeout: 5s }',
    'accessLog: false',
    ...(backends.state ? [`state: "${backends.state}"`] : []),
    ...(backends.locks ? [`locks: "${backends.locks}"`] : []),
    'pubsub:',
    ...(backends.pubsub ? [`  url: "${backends.pubsub}"`] : []),
    `  subscriptions: [{ topic: ${run}-${name}, path: /deliveries, backoff: [50ms] }]`,
  ];
  writeFileSync(file, `${lines.join('\n')}\n`);
  const sidecar: Sidecar = await startSidecar({
    file,
    command: [process.execPath, APP],
    admin: false,
    watch: false,
  });
  const api = JSON.parse(readFileSync(apiFile, 'utf8')) as { url: string; token: string };
  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${api.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json', ...init.headers },
    });
  const deliveries = () =>
    readFileSync(delivered, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { body: string; count: string });
  return { sidecar, call, deliveries, topic: `${run}-${name}` };
}

type Api = Awaited<ReturnType<typeof sidecarOn>>;

async function checkState({ call }: Api, backends: Backends) {
  const key = `/v1/state/${run}/counter`;
  expect((await call(key)).status).toBe(404);
  const created = await call(key, { method: 'PUT', body: '{"n":1}', headers: { 'if-none-match': '*' } });
  expect(created.status).toBe(200);
  const etag = created.headers.get('etag')!;
  expect((await call(key, { method: 'PUT', body: '2', headers: { 'if-none-match': '*' } })).status).toBe(412);
  const got = await call(key);
  expect(await got.json()).toEqual({ n: 1 });
  expect(got.headers.get('etag')).toBe(etag);
  expect((await call(key, { method: 'PUT', body: '{"n":2}', headers: { 'if-match': etag } })).status).toBe(
    200,
  );
  const stale = await call(key, { method: 'PUT', body: '{"n":3}', headers: { 'if-match': etag } });
  expect(stale.status).toBe(412);
  expect(((await stale.json()) as { code: string }).code).toBe('TRELLIS_E_KV_CONFLICT');
  expect(await (await call(key)).json()).toEqual({ n: 2 });

  // 10 concurrent read-modify-write increments through the API: compare-and-set loses none.
  const inc = async () => {
    for (;;) {
      const cur = await call(key);
      const { n } = (await cur.json()) as { n: number };
      const put = await call(key, {
        method: 'PUT',
        body: JSON.stringify({ n: n + 1 }),
        headers: { 'if-match': cur.headers.get('etag')! },
      });
      await put.arrayBuffer();
      if (put.status === 200) return;
      expect(put.status).toBe(412);
    }
  };
  await Promise.all(Array.from({ length: 10 }, inc));
  expect(await (await call(key)).json()).toEqual({ n: 12 });

  const items = Array.from({ length: 20 }, (_, i) => ({ key: `${run}/bulk/${i}`, value: { i } }));
  const put = await call('/v1/state/bulk-put', { method: 'POST', body: JSON.stringify({ items }) });
  const written = ((await put.json()) as { items: { key: string; revision: number }[] }).items;
  expect(written.map((w) => w.key)).toEqual(items.map((i) => i.key));
  const bulk = await call('/v1/state/bulk', {
    method: 'POST',
    body: JSON.stringify({ keys: [`${run}/bulk/3`, `${run}/missing`, `${run}/bulk/19`] }),
  });
  expect(((await bulk.json()) as { items: unknown[] }).items).toEqual([
    { key: `${run}/bulk/3`, value: { i: 3 }, revision: written[3]!.revision },
    { key: `${run}/missing`, value: null, revision: null },
    { key: `${run}/bulk/19`, value: { i: 19 }, revision: written[19]!.revision },
  ]);
  // Written to the backend named, not to a SQLite fallback: the store itself has the value.
  const store = await openKeyValueStore(backends.state!);
  try {
    expect(JSON.parse((await store.get(`${run}/bulk/3`))!.value)).toEqual({ i: 3 });
  } finally {
    await store.close();
  }
  for (const { key: k } of items)
    expect((await call(`/v1/state/${k}`, { method: 'DELETE' })).status).toBe(204);
  expect((await call(key, { method: 'DELETE', headers: { 'if-match': etag } })).status).toBe(412);
  expect((await call(key, { method: 'DELETE' })).status).toBe(204);
  expect((await call(key)).status).toBe(404);
}

async function checkLocks({ call }: Api) {
  const lock = `/v1/locks/${run}.leader`;
  const a = await call(lock, { method: 'POST', body: JSON.stringify({ holder: 'a', ttlMs: 10_000 }) });
  expect(a.status).toBe(200);
  const first = (await a.json()) as { token: number; holder: string };
  const b = await call(lock, { method: 'POST', body: JSON.stringify({ holder: 'b' }) });
  expect(b.status).toBe(409);
  expect(((await b.json()) as { holder: string }).holder).toBe('a');
  const renewed = await call(lock, {
    method: 'PUT',
    body: JSON.stringify({ holder: 'a', token: first.token, ttlMs: 10_000 }),
  });
  expect(((await renewed.json()) as { token: number }).token).toBe(first.token);
  expect(
    (await call(lock, { method: 'PUT', body: JSON.stringify({ holder: 'b', token: first.token }) })).status,
  ).toBe(409);
  expect((await call(`${lock}?holder=a&token=${first.token}`, { method: 'DELETE' })).status).toBe(204);
  const next = await call(lock, { method: 'POST', body: JSON.stringify({ holder: 'b' }) });
  const second = (await next.json()) as { token: number; holder: string };
  expect(second.holder).toBe('b');
  // The fencing token only grows: a resource can refuse writes carrying the older one.
  expect(second.token).toBeGreaterThan(first.token);
  expect(await (await call(lock)).json()).toMatchObject({ holder: 'b', token: second.token });
  expect((await call(`${lock}?holder=b&token=${second.token}`, { method: 'DELETE' })).status).toBe(204);
}

async function checkPubsub({ call, deliveries, topic }: Api) {
  const sent = await call(`/v1/publish/${topic}`, {
    method: 'POST',
    body: '{"order":1}',
    headers: { 'idempotency-key': `${run}-1` },
  });
  expect(sent.status).toBe(202);
  const again = await call(`/v1/publish/${topic}`, {
    method: 'POST',
    body: '{"order":1}',
    headers: { 'idempotency-key': `${run}-1` },
  });
  expect(((await again.json()) as { duplicate: boolean }).duplicate).toBe(true);
  // The app answers the first delivery 500: it is not acked and comes again, then acked on 204.
  await expect.poll(() => deliveries().length, { timeout: 20_000 }).toBe(2);
  expect(deliveries()).toEqual([
    { body: '{"order":1}', count: '1' },
    { body: '{"order":1}', count: '2' },
  ]);
  await new Promise((r) => setTimeout(r, 500));
  expect(deliveries()).toHaveLength(2); // acked: not delivered a third time
}

const cases: [string, string | undefined, Backends, ((api: Api, backends: Backends) => Promise<void>)[]][] = [
  [
    'postgres',
    postgres,
    {
      state: `${postgres}?table=trellis_kv_sidecar_int`,
      locks: `${postgres}?table=trellis_lease_sidecar_int`,
    },
    [checkState, checkLocks],
  ],
  [
    'redis',
    redis,
    { state: `${redis}?namespace=${run}-kv`, locks: `${redis}?namespace=${run}-lease`, pubsub: redis },
    [checkState, checkLocks, checkPubsub],
  ],
  ['nats', nats, { pubsub: nats }, [checkPubsub]],
  [
    'etcd',
    etcd,
    { state: `${etcd}?namespace=${run}/kv/`, locks: `${etcd}?namespace=${run}/lease/` },
    [checkState, checkLocks],
  ],
];

describe.each(cases)('sidecar platform API on %s', (name, url, backends, checks) => {
  it.skipIf(url === undefined)(
    `${checks.map((c) => c.name.replace(/^check/, '').toLowerCase()).join(', ')} through a real sidecar`,
    async () => {
      const api = await sidecarOn(name, backends);
      try {
        for (const check of checks) await check(api, backends);
      } finally {
        expect(await api.sidecar.stop()).toBe(0);
      }
    },
    60_000,
  );
});
