import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ROOT, tempDir, waitUntil } from '../support/index.js';

// `npm start` as a newcomer runs it: start.mjs with a copy of examples/shop/gateway.yaml (on free
// ports, so it can run beside anything else), the printed URLs tried through the gateway, the
// file edited and broken while it runs, then Ctrl-C (SIGINT) and no process left behind.
const DEFAULT_PORTS = [8080, 9901, 3001, 3002, 3003, 3004, 3005, 3006, 3007];

interface Shop {
  proc: Proc;
  file: string;
  ports: Map<number, number>;
  /** The free port that stands for one of the file's default ports. */
  port(p: number): number;
}

/** Writes a copy of the shop's gateway file on free ports into `dir` and starts start.mjs with it. */
async function startShop(dir: string): Promise<Shop> {
  const file = join(dir, 'gateway.yaml');
  const ports = new Map<number, number>();
  for (const p of DEFAULT_PORTS) ports.set(p, await freePort());
  const port = (p: number) => ports.get(p)!;
  let yaml = readFileSync(join(ROOT, 'examples/shop/gateway.yaml'), 'utf8');
  yaml = yaml.replace(/port: (8080|9901)\b/g, (_m, p) => `port: ${port(Number(p))}`);
  yaml = yaml.replace(/127\.0\.0\.1:(300[1-7])\b/g, (_m, p) => `127.0.0.1:${port(Number(p))}`);
  // The copy lives in a temporary folder: files the shop's gateway file refers to stay where they are.
  yaml = yaml.replace(/file: \.\/acl\//g, `file: ${join(ROOT, 'examples/shop/acl')}/`);
  writeFileSync(file, yaml);
  const proc = runNode([join(ROOT, 'examples/shop/start.mjs'), '--config', file]);
  await waitUntil(
    () => proc.output().includes('Ctrl-C stops everything'),
    'the shop to print its URLs',
    60_000,
  );
  return { proc, file, ports, port };
}

describe('the example shop (npm start)', () => {
  const tmp = tempDir('trellis-shop-');
  let file: string;
  let ports: Map<number, number>;
  let shop: Proc;
  let urls: { url: string; post: boolean }[] = [];
  let port: (p: number) => number;

  beforeAll(async () => {
    const started = await startShop(tmp.path);
    ({ file, ports, port } = started);
    shop = started.proc;
    urls = [...shop.output().matchAll(/^\s+curl [^\n]*?(http:\/\/\S+)([^\n]*)$/gm)].map((m) => ({
      url: m[1]!,
      post: m[2]!.includes('-X POST'),
    }));
  }, 90_000);

  afterAll(async () => {
    if (shop && shop.child.exitCode === null) {
      shop.child.kill('SIGKILL');
      await shop.exited;
    }
    tmp.cleanup();
  });

  it('prints curl lines that all answer through the gateway', async () => {
    expect(urls.length).toBeGreaterThanOrEqual(6);
    for (const { url, post } of urls) {
      const res = await fetch(url, post ? { method: 'POST', body: '{"pay":"card"}' } : {});
      expect(res.status, url).toBe(200);
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

  it('answers a checkout body that is not JSON with 400, and the cart keeps serving', async () => {
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
    expect(second.output()).toContain(`port${''}s ${port(8080)}, ${port(9901)}`);
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
  }, 90_000);
});

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

interface Proc {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null }>;
}

/** Runs `node <args>` from the repository root with its output captured (start.mjs is not the CLI). */
function runNode(args: string[]): Proc {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
  }
  const exited = new Promise<{ code: number | null }>((r) => child.once('exit', (code) => r({ code })));
  return { child, output: () => out, exited };
}
