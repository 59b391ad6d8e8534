import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceUrl } from '../../../src/testing/services.js';
import { CLI, tempDir, waitUntil } from '../support/index.js';
import { killShop, type Shop, startShop } from './support.js';

// `npm run shop:cluster` on the real engines: two gateways, two hosts (orders and the restock
// candidates), two pipeline instances, on PostgreSQL, Redis, NATS JetStream and etcd, with every
// name prefixed for this run. What an operator counts on: rate limits shared by the gateways, a
// configuration change seen by every orders instance within a second, exactly one job runner,
// one read model whichever instance answers, and no paid order lost when one instance of each
// kind (gateway, host, pipeline, service) is SIGKILLed under load.

const engines = await Promise.all(
  (['postgres', 'redis', 'nats', 'etcd'] as const).map(async (s) => [s, await serviceUrl(s)] as const),
);
const all = engines.every(([, url]) => url !== undefined);
const url = Object.fromEntries(engines) as Record<string, string>;

interface Order {
  orderId: string;
  flow: string;
  status: string;
}

describe.skipIf(!all)('the example shop as a cluster on the real engines', () => {
  const tmp = tempDir('trellis-shop-cluster-');
  const prefix = `shop_${process.pid}_${Date.now() % 100000}`;
  let shop: Shop;
  let cluster: { gateways: string[]; orders: string[]; hosts: string[]; pipelines: string[] };

  beforeAll(async () => {
    shop = await startShop(tmp.path, {
      args: ['--cluster', '--prefix', prefix],
      env: {
        SHOP_POSTGRES: url.postgres!,
        SHOP_REDIS: url.redis!,
        SHOP_NATS: url.nats!,
        SHOP_ETCD: url.etcd!,
      },
    });
    const line = (name: string) =>
      new RegExp(`^  ${name} +(.+)$`, 'm')
        .exec(shop.proc.output())![1]!
        .split(', ')
        .map((u) => u.trim());
    cluster = {
      gateways: line('gateways'),
      orders: line('orders'),
      hosts: line('hosts'),
      pipelines: line('pipelines'),
    };
  }, 150_000);

  afterAll(async () => {
    await killShop(shop);
    tmp.cleanup();
    // This run's tables, views and functions (every name starts with the prefix).
    const db = new pg.Client({ connectionString: url.postgres });
    await db.connect();
    const drop = async (kind: string, query: string) => {
      for (const { name } of (await db.query<{ name: string }>(query, [`${prefix}%`])).rows)
        await db.query(`DROP ${kind} IF EXISTS ${name} CASCADE`).catch(() => {});
    };
    await drop('VIEW', 'SELECT viewname AS name FROM pg_views WHERE viewname LIKE $1');
    await drop('TABLE', 'SELECT tablename AS name FROM pg_tables WHERE tablename LIKE $1');
    await drop('FUNCTION', 'SELECT proname AS name FROM pg_proc WHERE proname LIKE $1');
    await db.end();
  });

  const checkout = async (base: string, customer = 'alice') => {
    const res = await fetch(`${base}/web/carts/${customer}/checkout`, { method: 'POST', body: '{}' });
    const body = (await res.json().catch(() => ({}))) as { order?: Order };
    return { status: res.status, order: body.order };
  };

  it('runs two of each: gateways, orders, hosts, pipelines', () => {
    expect(cluster.gateways).toHaveLength(2);
    expect(cluster.orders).toHaveLength(2);
    expect(cluster.hosts).toHaveLength(2);
    expect(cluster.pipelines).toHaveLength(2);
  });

  it('shares the mobile rate limit (10/s) between both gateways through Redis', async () => {
    const codes = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        fetch(`${cluster.gateways[i % 2]}/mobile/products/1`).then(async (r) => {
          await r.arrayBuffer();
          return r.status;
        }),
      ),
    );
    const ok = codes.filter((c) => c === 200).length;
    // One shared window: about 10 in all (a second window may open during the burst), never 2 × 10.
    expect(ok).toBeGreaterThanOrEqual(8);
    expect(ok).toBeLessThanOrEqual(14);
    expect(codes.filter((c) => c === 429).length).toBe(24 - ok);
  });

  it('serves one read model, whichever orders instance answers', async () => {
    const a = await checkout(cluster.gateways[0]!);
    const b = await checkout(cluster.gateways[1]!);
    expect([a.status, b.status]).toEqual([200, 200]);
    const ids = [a.order!.orderId, b.order!.orderId];
    const seen = await Promise.all(
      cluster.orders.map((o) =>
        waitUntil(async () => {
          const h = (await (await fetch(`${o}/orders/alice`)).json()) as { orders: { id: string }[] };
          const got = h.orders.map((x) => x.id);
          return ids.every((id) => got.includes(id)) ? got : undefined;
        }, `both orders in the history at ${o}`),
      ),
    );
    expect(seen[0]).toEqual(seen[1]);
  });

  it('shows a flag change to every orders instance within a second', async () => {
    const res = await fetch(`${shop.url(7070)}/v1/config/flags/new-checkout?format=json`, {
      method: 'PUT',
      headers: { authorization: 'Bearer shop-demo-write-token' },
      body: JSON.stringify({ enabled: true, rollout: 100 }),
    });
    expect(res.status).toBe(200);
    const { revision } = (await res.json()) as { revision: number };
    const changed = Date.now();
    // Each instance follows the store's watch: its configuration revision reaches the write's.
    const seenAfter = await Promise.all(
      cluster.orders.map((o) =>
        waitUntil(
          async () => {
            const h = (await (await fetch(`${o}/healthz`)).json()) as { config: { revision: number } };
            return h.config.revision >= revision ? Date.now() - changed : undefined;
          },
          `revision ${revision} at ${o}`,
          5_000,
        ),
      ),
    );
    for (const ms of seenAfter) expect(ms).toBeLessThan(1_000);
    for (const o of cluster.orders) {
      const r = await fetch(`${o}/orders/bob`, { method: 'POST', body: '{}' });
      expect(((await r.json()) as Order).flow).toBe('new');
    }
  });

  it('runs the restock job on exactly one of its four candidates (etcd)', async () => {
    const report = join(shop.data, 'restock-report.json');
    const runners = new Set<string>();
    const until = Date.now() + 11_000;
    while (Date.now() < until) {
      if (existsSync(report))
        runners.add((JSON.parse(readFileSync(report, 'utf8')) as { ranBy: string }).ranBy);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(runners.size).toBe(1);
    const status = execFileSync(
      process.execPath,
      [CLI, 'leader', 'status', '--group', 'restock', '--store', `${url.etcd}?namespace=${prefix}/lease/`],
      { encoding: 'utf8' },
    );
    expect(status).toMatch(/leader/i);
  });

  it('loses no paid order when a gateway, a host, a pipeline instance and a service are SIGKILLed under load', async () => {
    const paid: string[] = [];
    let running = true;
    const load = (async () => {
      for (let i = 0; running; i++) {
        const r = await checkout(cluster.gateways[i % 2]!, i % 3 === 0 ? 'bob' : 'alice').catch(
          () => undefined,
        );
        if (r?.status === 200 && r.order?.status === 'paid') paid.push(r.order.orderId);
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    await waitUntil(() => paid.length >= 10, 'ten paid orders before the kills', 30_000);
    const pidOf = (pattern: string) =>
      execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
        .split('\n')
        .find((l) => l.includes(pattern))
        ?.trim()
        .split(/\s+/)[0];
    // One instance of each kind: a gateway, a host, a pipeline instance, a plain service.
    const victims = [
      'cluster/gateway-2.yaml',
      'cluster/host-1.yaml',
      'cluster/pipeline-1.yaml',
      '--name cart-2',
    ].map((p) => pidOf(p.startsWith('cluster/') ? join(shop.data, p) : p));
    expect(victims.every(Boolean), String(victims)).toBe(true);
    for (const pid of victims) process.kill(Number(pid), 'SIGKILL');
    const before = paid.length;
    await waitUntil(() => paid.length >= before + 10, 'ten more paid orders after the kills', 45_000);
    running = false;
    await load;
    // Every paid order reaches the end of the pipeline: a confirmation or the review queue.
    const delivered = () =>
      ['notifications.ndjson', 'fraud-review.ndjson'].flatMap((f) => {
        const file = join(shop.data, f);
        return existsSync(file)
          ? readFileSync(file, 'utf8')
              .trim()
              .split('\n')
              .map((l) => (JSON.parse(l) as { value: { orderId: string } }).value.orderId)
          : [];
      });
    await waitUntil(
      () => {
        const got = new Set(delivered());
        return paid.every((id) => got.has(id));
      },
      `all ${paid.length} paid orders through the pipeline`,
      60_000,
    );
  }, 150_000);
});
