import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir, waitUntil } from '../support/index.js';
import {
  killShop,
  listening,
  type Proc,
  runNode,
  type Shop,
  startShop,
  type TourCall,
  tourCalls,
} from './support.js';

// The shop's lifecycle as a newcomer meets it: the tour's URLs, an edit of the file while it runs,
// a crashed service, a second start beside the first, Ctrl-C and kill -9. What each pattern does
// in the shop is checked in parts.test.ts.

describe('the example shop (npm start)', () => {
  const tmp = tempDir('trellis-shop-');
  let started: Shop | undefined;
  let file: string;
  let ports: Map<number, number>;
  let shop: Proc;
  let calls: TourCall[] = [];
  let port: (p: number) => number;

  beforeAll(async () => {
    started = await startShop(tmp.path);
    ({ file, ports, port } = started);
    shop = started.proc;
    calls = tourCalls(shop.output());
  }, 150_000);

  afterAll(async () => {
    await killShop(started);
    tmp.cleanup();
  });

  it('prints curl lines that all answer through the gateway', async () => {
    expect(calls.length).toBeGreaterThanOrEqual(12);
    for (const { url, method, headers, body } of calls) {
      const res = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
      expect(res.status, `${method} ${url}`).toBe(200);
      await res.arrayBuffer();
    }
    const page = (await (await fetch(`http://127.0.0.1:${port(8080)}/web/products/1`)).json()) as Record<
      string,
      Record<string, unknown>
    >;
    expect(Object.keys(page).sort()).toEqual(['brand', 'product', 'reviews', 'stock']);
    expect(page.product).not.toHaveProperty('supplierCost');
  });

  it('balances the catalog over its two instances', async () => {
    const seen = new Set<string | null>();
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      const res = await fetch(`http://127.0.0.1:${port(8080)}/api/catalog/products`);
      seen.add(res.headers.get('x-served-by'));
      await res.arrayBuffer();
    }
    expect([...seen].sort()).toEqual(['catalog-1', 'catalog-2']);
  });

  it('picks up an edit of the file while it runs, and keeps serving through a broken one', async () => {
    const mobilePage = `http://127.0.0.1:${port(8080)}/mobile/products/1`;
    const images = async () =>
      ((await (await fetch(mobilePage)).json()) as { images: unknown[] }).images.length;
    expect(await images()).toBe(2);

    const original = readFileSync(file, 'utf8');
    writeFileSync(file, original.replace('limit: { images: 2 }', 'limit: { images: 3 }'));
    // Polled gently (at most 4 requests a second): the mobile frontend allows 10 per second.
    let lastTry = 0;
    await waitUntil(async () => {
      if (Date.now() - lastTry < 250) return false;
      lastTry = Date.now();
      return (await images()) === 3;
    }, 'the edited limit to apply');

    const broken = original
      .replace('limit: { images: 2 }', 'limit: { images: 4 }')
      .replace('balance: least-request', 'balance: least-requests');
    writeFileSync(file, broken);
    const line = broken.split('\n').findIndex((l) => l.includes('least-requests')) + 1;
    await waitUntil(
      () =>
        shop.output().includes(`gateway.yaml:${line}:`) && shop.output().includes('configuration rejected'),
      'the gateway to refuse the broken file',
    );
    // Still the last good configuration, and still answering.
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`http://127.0.0.1:${port(8080)}/web/products/2`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    expect(await images()).toBe(3);
  });

  it('answers a checkout body that is not JSON with 400, and the services keep serving', async () => {
    const res = await fetch(`http://127.0.0.1:${port(8080)}/web/carts/alice/checkout`, {
      method: 'POST',
      body: 'notjson',
    });
    expect(res.status).toBe(400);
    await res.arrayBuffer();
    const cart = await fetch(`http://127.0.0.1:${port(8080)}/web/carts/alice`);
    expect(cart.status).toBe(200);
    await cart.arrayBuffer();
    expect(shop.output()).not.toContain('cart exited');
    expect(shop.output()).not.toContain('host exited');
  });

  it('rounds the average rating as a shop shows it', async () => {
    const page = (await (await fetch(`http://127.0.0.1:${port(8080)}/web/products/1`)).json()) as {
      reviews: { average: number };
    };
    expect(String(page.reviews.average)).toMatch(/^\d(\.\d)?$/);
  });

  it('restarts a service that dies, and the gateway serves it again', async () => {
    const pid = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
      .split('\n')
      .find((l) => l.includes('cart.mjs') && l.includes(`--port ${port(3005)}`))
      ?.trim()
      .split(/\s+/)[0];
    expect(pid).toBeDefined();
    process.kill(Number(pid), 'SIGKILL');
    await waitUntil(() => shop.output().includes('restarting cart'), 'the shop to restart the cart');
    await waitUntil(
      async () => (await fetch(`http://127.0.0.1:${port(8080)}/web/carts/alice`)).status === 200,
      'the cart to answer through the gateway again',
      20_000,
    );
  });

  it('refuses to start a second time beside itself, and says why', async () => {
    const second = runNode([join(ROOT, 'examples/shop/start.mjs'), '--config', file]);
    const { code } = await second.exited;
    expect(code).toBe(1);
    const refused =
      second
        .output()
        .split('\n')
        .find((l) => l.includes('cannot start: ports')) ?? '';
    for (const p of [8080, 9901, 3021, 7070]) expect(refused).toContain(` ${port(p)}`);
    expect(second.output()).toContain('Is another shop running?');
    expect(second.output()).not.toContain('Ctrl-C stops everything');
  });

  it('stops every process it started on SIGINT', async () => {
    shop.child.kill('SIGINT');
    const { code } = await shop.exited;
    expect(code).toBe(0);
    expect(shop.output()).toContain('[shop] stopped');
    for (const p of ports.values()) expect(await listening(p), `port ${p}`).toBe(false);
    const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .split('\n')
      .filter((args) => args.includes(file) || [...ports.values()].some((p) => args.includes(`--port ${p}`)));
    expect(left).toEqual([]);
  });
});

describe('the example shop when start.mjs is killed with SIGKILL', () => {
  const tmp = tempDir('trellis-shop-kill-');
  afterAll(() => tmp.cleanup());

  it('takes its children with it: no port stays held', async () => {
    const shop = await startShop(tmp.path);
    shop.proc.child.kill('SIGKILL');
    await shop.proc.exited;
    for (const p of shop.ports.values()) {
      await waitUntil(async () => !(await listening(p)), `port ${p} to be released`, 15_000);
    }
  }, 150_000);
});
