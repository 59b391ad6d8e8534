import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdminPanel } from '../../src/admin/panels.js';
import { type AdminServer, createAdminServer } from '../../src/admin/server.js';
import { ambassadorPanel } from '../../src/ambassador/panel.js';
import { ROOT } from '../e2e/support/index.js';
import { type Browser, hasChromium, launchChromium } from './chromium.js';

const SCREENSHOTS = join(ROOT, 'test/browser/__screenshots__');
const HOSTILE = '<img src=x onerror="window.__owned=1">';

const source = (panels: () => AdminPanel[], peers: string[] = []) => ({
  registry: new Registry(),
  ready: () => true,
  routes: () => ({ frontends: {} }),
  services: () => ({ services: [] }),
  config: () => ({ version: 1, source: 'test', loadedAt: new Date().toISOString() }),
  panels,
  peers,
});

// The parts' panels on the dashboard: drawn by their kind's renderer or the generic one, failing
// parts shown as failing, a peer's panels beside the local ones, nothing a part returns as markup.
describe.skipIf(!hasChromium)('dashboard panels in a browser', () => {
  let local: AdminServer;
  let peer: AdminServer;
  let browser: Browser;
  let page: Page;
  let stages = 2;

  beforeAll(async () => {
    peer = createAdminServer(
      source(() => [
        { kind: 'order-feed', id: 'feed:orders', title: 'Order events', view: () => ({ stages }) },
      ]),
    );
    const peerPort = (await peer.listen('127.0.0.1', 0)).port;
    local = createAdminServer(
      source(
        () => [
          {
            kind: 'unknown-kind',
            id: 'x:1',
            title: `Routes ${HOSTILE}`,
            view: () => [
              { route: '/inventory', mode: 'shadow', note: HOSTILE },
              { route: '/prices', mode: 'canary', note: 'weight 10' },
            ],
          },
          {
            kind: 'leader',
            id: 'leader:restock:a',
            title: 'Leader of restock',
            view: () => ({ group: 'restock', identity: 'a', isLeader: true, leader: 'a', token: 7 }),
          },
          ambassadorPanel(() => [
            {
              name: 'catalog',
              policies: [
                { policy: 'deadline', timeout: 2000 },
                { policy: 'perTryTimeout', perTryTimeout: 500 },
                { policy: 'retry', attempts: 3 },
              ],
              hedges: { sent: 12, won: 7, budget: 2 },
              upstreams: [
                {
                  id: 'http://10.0.5.1:8080',
                  source: 'dns',
                  healthy: true,
                  ejected: false,
                  inFlight: 1,
                  breaker: 'closed',
                },
                {
                  id: 'http://10.0.5.9:8080',
                  source: 'registry',
                  healthy: true,
                  ejected: false,
                  inFlight: 0,
                  breaker: 'open',
                },
                { id: 'http://10.0.5.2:8080', healthy: true, ejected: false, inFlight: 0, breaker: 'closed' },
              ],
            },
          ]),
          {
            kind: 'broken',
            id: 'broken:1',
            title: 'Broken part',
            view: () => {
              throw new Error('store is away');
            },
          },
        ],
        [`http://127.0.0.1:${peerPort}`, 'http://127.0.0.1:1'],
      ),
    );
    const port = (await local.listen('127.0.0.1', 0)).port;
    browser = await launchChromium();
    page = browser.page;
    await page.goto(`http://127.0.0.1:${port}/`);
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.all([local?.close(), peer?.close()]);
  });

  it('draws a panel of a kind without a renderer as a table of its data, as text only', async () => {
    const article = page.locator('article.panel[data-panel-id="x:1"]');
    await article.waitFor({ timeout: 15_000 });
    expect(await article.locator('h3').textContent()).toContain(HOSTILE);
    expect(await article.locator('tr', { hasText: '/inventory' }).locator('td').allTextContents()).toEqual([
      '/inventory',
      'shadow',
      HOSTILE,
    ]);
    expect(await page.evaluate(() => (globalThis as { __owned?: number }).__owned)).toBeUndefined();
    expect(await page.locator('#panels img').count()).toBe(0);
  });

  it('draws a panel with its kind’s renderer, loaded by kind', async () => {
    const article = page.locator('article.panel[data-panel-id="leader:restock:a"]');
    await article.locator('[data-testid="leader"]').waitFor({ timeout: 15_000 });
    expect(await article.locator('[data-testid="leader"]').textContent()).toBe('a');
    expect(await article.textContent()).toMatch(/leading.*Fencing token7/);
  });

  it('draws the ambassador panel: hedges sent and won per remote, each upstream’s source', async () => {
    const article = page.locator('article.panel[data-panel-id="ambassador"]');
    await article.locator('tr', { hasText: '10.0.5.1' }).waitFor({ timeout: 15_000 });
    expect(await article.textContent()).toContain('catalog: deadline');
    expect(await article.textContent()).toContain('hedges 12 sent, 7 won');
    const cells = async (host: string) =>
      (await article.locator('tr', { hasText: host }).locator('td').allTextContents()).slice(0, 2);
    expect(await cells('10.0.5.1')).toEqual(['http://10.0.5.1:8080', 'dns']);
    expect(await cells('10.0.5.9')).toEqual(['http://10.0.5.9:8080', 'registry']);
    expect(await cells('10.0.5.2')).toEqual(['http://10.0.5.2:8080', 'static']);
  });

  it('shows a part whose view fails as unavailable, with the reason', async () => {
    const article = page.locator('article.panel[data-panel-id="broken:1"]');
    await article.waitFor({ timeout: 15_000 });
    expect(await article.textContent()).toMatch(/unavailable.*store is away/);
  });

  it('shows a peer’s panels with their origin, follows their data, and names an unreachable peer', async () => {
    const article = page.locator('article.panel[data-panel-id="feed:orders"]');
    await article.waitFor({ timeout: 15_000 });
    expect(await article.locator('h3').textContent()).toMatch(/Order events.*http:\/\/127\.0\.0\.1:\d+/);
    stages = 3;
    await article.locator('dd', { hasText: '3' }).waitFor({ timeout: 15_000 });
    expect(await page.locator('.peer-down').textContent()).toContain('http://127.0.0.1:1');
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-panels.png'), fullPage: true });
    expect(browser.pageErrors.filter((e) => !/Failed to load resource|404 \(Not Found\)/.test(e))).toEqual(
      [],
    );
  });
});
