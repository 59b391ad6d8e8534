// The orders service, a workload of `trellis host` (host.yaml; its `config:` arrives as env.config).
//
//   POST /orders/:customer   checkout: prices the cart, places an event-sourced order, pays for it
//                            through the payment ambassador (Idempotency-Key: a retried checkout
//                            applies once)
//   GET  /orders/:customer   the order history, from its read model (?after=POSITION waits for it)
//
// The `new-checkout` feature flag and the `shop/checkout` settings come from the configuration
// store (`trellis config serve`), followed live. Order events flow on to the order pipeline.
// Its own admin listener puts its panels (projections' lag, configuration) on the dashboard.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { configPanel, createConfigClient } from 'trellis/config';
import {
  commandBus,
  handleCommand,
  idempotency,
  kvIdempotencyStore,
  openEventStore,
  projectionsPanel,
  projectionTable,
  runProjection,
  sql,
  waitForProjection,
} from 'trellis/cqrs';
import { startAdminListener } from 'trellis/runtime';
import { openKeyValueStore } from 'trellis/stores';
import { order, orderFeed, orderHistory } from './orders-model.mjs';

const DEFAULT_SETTINGS = { shipping: 9, freeShippingOver: 200 };
let service;

/** Opens the stores, follows the configuration, starts the projections (the host awaits this). */
export async function start(env) {
  const c = env.config;
  const store = await openEventStore(c.events);
  const kv = await openKeyValueStore(c.idempotency);
  const config = await createConfigClient({
    source: c.configServer,
    cacheFile: join(c.data, `orders-config-cache${c.instance ? `-${c.instance}` : ''}.json`),
  });
  const stopping = new AbortController();
  const feed = orderFeed((event) => post(c.pipeline, event, { 'idempotency-key': event.eventId }));
  const projections = [orderHistory, feed];
  const running = projections.map((p) => keepProjecting(store, p, stopping.signal));
  const commands = commandBus()
    .use(idempotency({ store: kvIdempotencyStore(kv, { prefix: 'shop/orders/' }) }))
    .register('checkout', (payload) => checkout(store, config, c, payload));
  // Its panels are for the dashboard: a listener that never binds is said, not fatal.
  const admin = listenWhenFree(c.admin, () => [
    projectionsPanel(store, projections, 'Orders: projections'),
    configPanel(config, 'Orders: configuration'),
  ]).catch((err) => {
    console.error(`orders: no admin listener on port ${c.admin}: ${err.message}`);
    return undefined;
  });
  service = { store, kv, config, commands, stopping, running, admin };
}

/** Closes what start opened, once the host has drained the workload's requests. */
export async function stop() {
  const s = service;
  s.stopping.abort();
  await Promise.allSettled(s.running);
  (await s.admin)?.close();
  await s.config.close();
  await s.store.close();
  await s.kv.close();
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    try {
      if (url.pathname === '/healthz') {
        const { source, revision } = service.config.health();
        return Response.json({ ok: true, name: 'orders', config: { source, revision } });
      }
      const customer = /^\/orders\/([A-Za-z0-9_-]{1,64})$/.exec(url.pathname)?.[1];
      if (!customer) return problem(404, 'no such endpoint: POST or GET /orders/CUSTOMER');
      if (request.method === 'GET')
        return Response.json(await history(customer, url.searchParams.get('after')));
      if (request.method !== 'POST') return problem(405, 'GET or POST /orders/CUSTOMER');
      const body = await request.text();
      let pay;
      try {
        pay = body ? JSON.parse(body).pay : undefined;
      } catch {
        return problem(400, 'the body is not JSON: send {"pay":"card"}');
      }
      const key = request.headers.get('idempotency-key') ?? undefined;
      const result = await service.commands.send(
        'checkout',
        { customer, pay: pay ?? 'card' },
        key ? { idempotencyKey: key } : {},
      );
      return Response.json(result, { status: result.status === 'paid' ? 201 : 402 });
    } catch (err) {
      return problem(err.status ?? 500, err.message, err.code);
    }
  },
};

/** Prices the cart, places the order, charges it: each step an event in the order's stream. */
async function checkout(store, config, c, { customer, pay }) {
  const cart = await get(`${c.cart}/carts/${customer}`);
  const lines = await Promise.all(
    cart.items.map(async (item) => {
      const product = await get(`${c.catalog}/products/${item.productId}`);
      return { productId: item.productId, qty: item.qty, price: product.price };
    }),
  );
  const settings = { ...DEFAULT_SETTINGS, ...safeGet(config, 'shop/checkout') };
  const subtotal = lines.reduce((sum, l) => sum + l.price * l.qty, 0);
  const shipping = subtotal >= settings.freeShippingOver ? 0 : settings.shipping;
  // The new checkout flow goes to the share of customers the flag's rollout says (20 % at first),
  // the same customers on every instance; the rest keep the classic one.
  const flow = config.flag('new-checkout', { key: customer }) ? 'new' : 'classic';
  const id = randomUUID().slice(0, 8);
  const stream = `order-${id}`;
  const total = subtotal + shipping;
  await handleCommand(store, stream, { type: 'Place', customer, items: lines, total, shipping, flow }, order);
  const charge = await post(
    `${c.payments}/charges`,
    { orderId: id, amount: total, method: pay },
    {
      'idempotency-key': `charge-${id}`,
    },
  ).catch((err) => ({ error: err.message }));
  const paid = charge.chargeId
    ? await handleCommand(store, stream, { type: 'Pay', chargeId: charge.chargeId }, order)
    : await handleCommand(store, stream, { type: 'FailPayment', reason: charge.error }, order);
  const status = paid.state.status;
  return {
    orderId: id,
    customer,
    total,
    shipping,
    flow,
    status,
    chargeId: charge.chargeId,
    position: paid.position,
  };
}

async function history(customer, after) {
  const { store } = service;
  // The read model's name beside this event store (prefixed when the store has its own table).
  const history = projectionTable(store, 'order_history');
  if (after) await waitForProjection(store, 'order_history', Number(after), { timeoutMs: 2000 });
  const rows = await store.transaction((tx) =>
    sql(tx, `SELECT * FROM ${history} WHERE customer = $1 ORDER BY placed_at DESC LIMIT 20`, [customer]),
  );
  return { customer, orders: rows };
}

/** A projection that stops on an error it cannot ride out (the pipeline down) starts again. */
async function keepProjecting(store, projection, signal) {
  while (!signal.aborted) {
    try {
      await runProjection(store, projection, { signal });
    } catch (err) {
      console.error(`orders: projection ${projection.name} stopped (${err.message}); again in 1 s`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/**
 * The admin listener, in the background: after a reload the old worker holds the port until its
 * drain ends, so the new one keeps trying instead of failing its start.
 */
async function listenWhenFree(port, panels) {
  if (!port) return undefined;
  for (let i = 0; ; i++) {
    try {
      return await startAdminListener({ port, panels });
    } catch (err) {
      if (service?.stopping.signal.aborted || i > 300) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function safeGet(config, key) {
  try {
    return config.get(key);
  } catch {
    return {};
  }
}

async function get(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok)
    throw Object.assign(new Error(body.error ?? `${url} answered ${res.status}`), {
      status: res.status === 404 ? 404 : 502,
    });
  return body;
}

async function post(url, body, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok)
    throw new Error(answer.error ?? answer.detail ?? answer.title ?? `${url} answered ${res.status}`);
  return answer;
}

function problem(status, detail, code) {
  return Response.json(
    { title: status >= 500 ? 'orders failed' : 'bad request', status, detail, ...(code ? { code } : {}) },
    { status, headers: { 'content-type': 'application/problem+json' } },
  );
}
