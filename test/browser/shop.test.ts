import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killShop, type Shop, startShop } from '../e2e/shop/support.js';
import { ROOT, tempDir } from '../e2e/support/index.js';
import { type Browser, hasChromium, launchChromium } from './chromium.js';

const SCREENSHOTS = join(ROOT, 'test/browser/__screenshots__');

// The shop's dashboard as a newcomer opens it after `npm start`: the gateway's own view and one
// panel per part of the shop, fetched from each part's admin listener (admin.peers), each drawn
// by its kind's renderer with the part's live figures.
describe.skipIf(!hasChromium)('the example shop’s dashboard in a browser', () => {
  const tmp = tempDir('trellis-shop-browser-');
  let shop: Shop;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    shop = await startShop(tmp.path);
    // Something to show: a paid order (projections, pipeline, ambassador) and a wishlist entry.
    const gw = shop.url(8080);
    for (const customer of ['alice', 'bob']) {
      const res = await fetch(`${gw}/web/carts/${customer}/checkout`, { method: 'POST', body: '{}' });
      await res.arrayBuffer();
    }
    await (
      await fetch(`${gw}/api/wishlist/alice`, { method: 'POST', body: '{"productId":1}' })
    ).arrayBuffer();
    // The strangled stock route, shadowed: its panel shows the field the rewrite gets wrong.
    for (const id of [1, 2, 3, 4]) await (await fetch(`${gw}/api/stock/${id}`)).arrayBuffer();
    browser = await launchChromium();
    page = browser.page;
    await page.goto(`${shop.url(9901)}/`);
  }, 150_000);

  afterAll(async () => {
    await browser?.close();
    await killShop(shop);
    tmp.cleanup();
  });

  const panel = (kind: string) => page.locator(`article.panel[data-panel-kind="${kind}"]`);

  it('shows a panel for each part, drawn by its renderer', async () => {
    for (const kind of ['host', 'pipeline', 'ambassador', 'sidecar', 'projections', 'config', 'strangler']) {
      await panel(kind).locator('table, dl').first().waitFor({ timeout: 20_000 });
      expect(await panel(kind).textContent(), kind).not.toMatch(/cannot show|unavailable/);
    }
  });

  it('shows what each part is doing', async () => {
    expect(await panel('host').textContent()).toMatch(/orders.*ready/);
    expect(await panel('host').textContent()).toMatch(/restock-a.*restock-b/);
    // Which of the two job candidates leads, and that the other stands by.
    await panel('host').locator('.badge', { hasText: 'leading' }).waitFor({ timeout: 20_000 });
    expect(await panel('host').locator('.badge', { hasText: 'standby' }).count()).toBe(1);
    expect(await panel('sidecar').textContent()).toMatch(/wishlist.*healthy/);
    expect(await panel('ambassador').textContent()).toMatch(/payments.*breaker closed/);
    expect(await panel('config').textContent()).toContain('new-checkout');
    await panel('strangler').locator('td', { hasText: 'warehouse' }).waitFor({ timeout: 20_000 });
    // The pipeline's stages fill as the paid orders go through.
    await panel('pipeline').locator('tr', { hasText: 'notify' }).waitFor({ timeout: 20_000 });
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, 'shop-dashboard.png'), fullPage: true });
    expect(browser.pageErrors.filter((e) => !/Failed to load resource|404 \(Not Found\)/.test(e))).toEqual(
      [],
    );
  });
});
