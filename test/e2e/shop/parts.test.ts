import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, tempDir, waitUntil } from '../support/index.js';
import { killShop, type Shop, startShop } from './support.js';

// Each pattern where the shop uses it, as the tour tells a newcomer to see it: CQRS orders paid
// through the ambassador, the feature flag from the config store, the leader-elected job in the
// host, the order pipeline, the Python wishlist under its sidecar, and every part's panel on the
// gateway's dashboard. This shop runs beside the one of shop.test.ts, on other ports.

interface Order {
  orderId: string;
  customer: string;
  total: number;
  flow: 'new' | 'classic';
  status: string;
  chargeId?: string;
  position: number;
}

describe('the example shop: every pattern in its place', () => {
  const tmp = tempDir('trellis-shop-parts-');
  let shop: Shop;
  let gw: string;

  beforeAll(async () => {
    shop = await startShop(tmp.path);
    gw = shop.url(8080);
  }, 150_000);

  afterAll(async () => {
    await killShop(shop);
    tmp.cleanup();
  });

  const checkout = async (customer: string, key?: string) => {
    const res = await fetch(`${gw}/web/carts/${customer}/checkout`, {
      method: 'POST',
      headers: key ? { 'idempotency-key': key } : {},
      body: '{"pay":"card"}',
    });
    const body = (await res.json()) as { order: Order };
    expect(res.status, JSON.stringify(body)).toBe(200);
    return body.order;
  };

  it('checks out through orders (CQRS): placed, paid through the flaky provider, once per Idempotency-Key', async () => {
    // The provider fails every third call: six checkouts meet two failures, the ambassador retries them.
    const orders: Order[] = [];
    for (let i = 0; i < 6; i++) orders.push(await checkout('alice', `parts-${i}`));
    expect(orders.map((o) => o.status)).toEqual(Array(6).fill('paid'));
    expect(new Set(orders.map((o) => o.chargeId)).size).toBe(6);
    // alice's cart: 1 × 189 + 2 × 69, free shipping over 200.
    expect(orders[0]).toMatchObject({ customer: 'alice', total: 327 });
    const again = await checkout('alice', 'parts-0');
    expect(again).toEqual(orders[0]);
    const metrics = await (await fetch(`${shop.url(9930)}/metrics`)).text();
    expect(metrics).toMatch(/trellis_ambassador_retries_total\{[^}]*\} [1-9]/);

    // The history read model, read-your-writes with the position the last command returned.
    const last = orders.at(-1)!;
    const history = (await (await fetch(`${gw}/api/orders/alice?after=${last.position}`)).json()) as {
      orders: { id: string; status: string }[];
    };
    expect(history.orders.map((o) => o.id)).toEqual(expect.arrayContaining(orders.map((o) => o.orderId)));
    expect(history.orders.find((o) => o.id === last.orderId)?.status).toBe('paid');
  });

  it('sends each paid order through the pipeline: enriched, fraud-checked, notified (bob held for review)', async () => {
    const alice = await checkout('alice');
    const bob = await checkout('bob');
    const lines = (name: string) =>
      existsSync(join(shop.data, name))
        ? readFileSync(join(shop.data, name), 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l).value as { orderId: string; to: string; risk: string })
        : [];
    const mail = await waitUntil(
      () => lines('notifications.ndjson').find((m) => m.orderId === alice.orderId),
      "alice's confirmation",
      20_000,
    );
    expect(mail).toMatchObject({ to: 'alice@shop.example', risk: 'ok' });
    // bob lives outside the home market: his order waits for a human, and gets no mail yet.
    await waitUntil(
      () => lines('fraud-review.ndjson').some((m) => m.orderId === bob.orderId),
      "bob's order held for review",
      20_000,
    );
    expect(lines('notifications.ndjson').some((m) => m.orderId === bob.orderId)).toBe(false);
  });

  it('follows the new-checkout flag from the config store: 20 % of customers, then everyone, without a restart', async () => {
    // alice and bob are both outside the first 20 %: the tour shows the classic flow at first.
    expect((await checkout('alice')).flow).toBe('classic');
    const res = await fetch(`${shop.url(7070)}/v1/config/flags/new-checkout?format=json`, {
      method: 'PUT',
      headers: { authorization: 'Bearer shop-demo-write-token', 'x-trellis-author': 'test' },
      body: JSON.stringify({ enabled: true, rollout: 100 }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    await waitUntil(
      async () => (await checkout('alice')).flow === 'new',
      'the rollout to reach orders',
      5_000,
    );
  });

  it('runs the restock job on one of its two candidates (leader election in the host)', async () => {
    const report = await waitUntil(() => {
      const f = join(shop.data, 'restock-report.json');
      return existsSync(f)
        ? (JSON.parse(readFileSync(f, 'utf8')) as { ranBy: string; low: unknown[] })
        : undefined;
    }, 'a restock report');
    expect(['restock-a', 'restock-b']).toContain(report.ranBy);
    expect(report.low).toEqual([
      { productId: 2, available: 0 },
      { productId: 4, available: 3 },
    ]);
    const status = execFileSync(
      process.execPath,
      [CLI, 'leader', 'status', '--group', 'restock', '--store', `sqlite:${join(shop.data, 'leases.db')}`],
      { encoding: 'utf8' },
    );
    expect(status).toMatch(/leader/i);
    // The host's status (and its dashboard panel) says which candidate leads.
    const leading = await waitUntil(async () => {
      const host = (await (await fetch(`${shop.url(9902)}/admin/services`)).json()) as {
        workloads: Record<string, { leading?: boolean }>;
      };
      const l = ['restock-a', 'restock-b'].filter((w) => host.workloads[w]?.leading === true);
      return l.length === 1 ? l : undefined;
    }, 'one leading candidate in the host status');
    expect(report.ranBy).toBe(leading[0]);
  });

  it('keeps wishlists in the Python service under its sidecar: state, pub/sub deliveries', async () => {
    const add = await fetch(`${gw}/api/wishlist/carol`, { method: 'POST', body: '{"productId":2}' });
    expect(await add.json()).toEqual({ customer: 'carol', items: [2] });
    // Added twice: still once (compare-and-set on the state API).
    await (
      await fetch(`${gw}/api/wishlist/carol`, { method: 'POST', body: '{"productId":2}' })
    ).arrayBuffer();
    expect(await (await fetch(`${gw}/api/wishlist/carol`)).json()).toEqual({ customer: 'carol', items: [2] });
    const bad = await fetch(`${gw}/api/wishlist/carol`, { method: 'POST', body: 'nope' });
    expect(bad.status).toBe(400);
    await bad.arrayBuffer();
    // Each add was published and delivered back to the app, which counts it.
    await waitUntil(
      async () => ((await (await fetch(`${gw}/api/popular`)).json()) as Record<string, number>)['2'] === 2,
      'both deliveries counted',
    );
  });

  it("shows the parts' panels on the gateway's dashboard", async () => {
    const { panels, peers } = (await (await fetch(`${shop.url(9901)}/admin/panels`)).json()) as {
      panels: { kind: string; title: string }[];
      peers: { url: string; ok: boolean }[];
    };
    expect(peers.map((p) => p.ok)).toEqual([true, true, true, true, true]);
    expect(panels.map((p) => p.kind).sort()).toEqual(
      ['ambassador', 'config', 'host', 'pipeline', 'projections', 'sidecar', 'strangler'].sort(),
    );
  });
});
