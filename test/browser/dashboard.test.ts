import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  type OriginProcess,
  ROOT,
  spawnOrigin,
  startGatewayCli,
  type TempDir,
  tempDir,
  waitUntil,
} from '../e2e/support/index.js';
import { type Browser, hasChromium, launchChromium } from './chromium.js';

const SCREENSHOTS = join(ROOT, 'test/browser/__screenshots__');

function gatewayYaml(a: OriginProcess, b: OriginProcess, service = 'catalog'): string {
  return `listen: { port: 0, host: 127.0.0.1 }
services:
  catalog:
    upstreams: ['${a.url}', '${b.url}']
    healthCheck: { path: /, interval: 200ms, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 1 }
middlewares:
  small-bodies: { bodyLimit: { max: 64kb } }
  quick: { timeout: { request: 2s, body: 10s } }
routes:
  - { name: products, match: { pathPrefix: /products, methods: [GET] }, middlewares: [small-bodies, quick], proxy: { service: ${service} } }
  - { name: health, match: { path: /health }, respond: { status: 200, body: { ok: true } } }
frontends:
  mobile:
    pathPrefix: /m
    routes:
      - { name: m-products, match: { pathPrefix: /products }, proxy: { service: catalog } }
`;
}

// The dashboard of the real `trellis gateway` CLI in headless Chromium: what an operator sees.
describe.skipIf(!hasChromium)('gateway dashboard in a browser', () => {
  let dir: TempDir;
  let a: OriginProcess;
  let b: OriginProcess;
  let gw: GatewayProcess;
  let browser: Browser;
  let page: Page;
  let pageErrors: string[];

  /** Sends `n` requests to the gateway and waits for their answers. */
  const traffic = async (path: string, n: number) => {
    for (let i = 0; i < n; i++) await (await fetch(gw.url + path)).arrayBuffer();
  };
  /** The table row of upstream `url` on the page. */
  const upstreamRow = (url: string) => page.locator('#services tr', { hasText: url });

  beforeAll(async () => {
    dir = tempDir('trellis-browser-');
    [a, b] = await Promise.all([spawnOrigin('a'), spawnOrigin('b')]);
    gw = await startGatewayCli(join(dir.path, 'gateway.yaml'), gatewayYaml(a, b));
    browser = await launchChromium();
    page = browser.page;
    pageErrors = browser.pageErrors;
  });

  afterAll(async () => {
    await browser?.close();
    await gw?.stop();
    await Promise.all([a?.signal('SIGKILL'), b?.signal('SIGKILL')]);
    dir?.cleanup();
  });

  it('shows the routes by frontend, with match, handler, service and middleware order', async () => {
    const res = await page.goto(`${gw.adminUrl}/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toMatch(/^default-src 'self'/);
    const defaultTable = page.locator('#routes table', { hasText: 'Frontend default' });
    const products = defaultTable.locator('tr', { hasText: 'products' });
    await products.waitFor();
    const cells = await products.locator('td').allTextContents();
    expect(cells.slice(0, 4)).toEqual(['products', 'GET /products/**', 'proxy', 'catalog']);
    // The middleware chain in the order it runs.
    expect(await products.locator('ol.chain li').allTextContents()).toEqual(['small-bodies', 'quick']);
    await page
      .locator('#routes table', { hasText: 'Frontend mobile' })
      .locator('tr', { hasText: 'm-products' })
      .waitFor();
    expect(await page.locator('#routes th[scope=col]').first().textContent()).toBe('Route');
    await expect(page.getByTestId('config-version').textContent()).resolves.toBe('1');
    expect(await page.getByTestId('last-reload').textContent()).toBe('none since start');
  });

  it('shows every upstream healthy and in rotation, then the one that dies as unhealthy', async () => {
    for (const o of [a, b]) {
      await upstreamRow(o.url)
        .filter({ has: page.locator('td', { hasText: /^healthy$/ }) })
        .waitFor();
      expect(await upstreamRow(o.url).locator('td').nth(2).textContent()).toBe('not ejected');
    }
    expect(await page.locator('#services caption').textContent()).toContain('2 of 2 in rotation');
    await b.signal('SIGKILL');
    await upstreamRow(b.url)
      .filter({ has: page.locator('td', { hasText: /^unhealthy$/ }) })
      .waitFor({ timeout: 15_000 });
    expect(await upstreamRow(a.url).textContent()).not.toContain('unhealthy');
    await page.locator('#services caption', { hasText: '1 of 2 in rotation' }).waitFor();
  });

  it('shows requests per second, error rate and latency per route from /metrics', async () => {
    // Traffic between two refreshes of the page, so the interval figures are not empty.
    const row = page.locator('#traffic tbody tr', { hasText: 'products' }).first();
    await traffic('/products/1', 40);
    await traffic('/health', 10);
    await waitUntil(async () => {
      const cells = await row.locator('td').allTextContents();
      return cells.length === 8 && Number(cells[3]) > 0 && cells[5]!.endsWith('ms');
    }, 'a non-zero request rate for route products on the page');
    const cells = await row.locator('td').allTextContents();
    expect(cells.slice(0, 3)).toEqual(['default', 'products', 'catalog']);
    expect(Number(cells[7])).toBeGreaterThanOrEqual(40);
    expect(cells[4]).toMatch(/^\d+(\.\d+)? %$/);
    expect(cells[6]).toMatch(/ms$/);
    // The headline adds the routes up.
    expect(await page.locator('#traffic .headline').textContent()).toContain('requests/s');
  });

  it('shows a rejected reload with its full error, escaped, and keeps the active version', async () => {
    const evil = '<img src=x id=injected>';
    writeFileSync(gw.file, gatewayYaml(a, b, `'${evil}'`));
    const errors = page.getByTestId('reload-errors');
    await errors.waitFor({ timeout: 15_000 });
    const text = (await errors.textContent()) ?? '';
    // The exact line `trellis validate` would print: file:line:col path: message.
    expect(text).toMatch(
      /gateway\.yaml:\d+:\d+ routes\[0\]\.proxy\.service: unknown service "<img src=x id=injected>"/,
    );
    expect(await page.getByTestId('last-reload').textContent()).toMatch(
      /^rejected at .*; still serving version 1$/,
    );
    expect(await page.locator('#injected').count()).toBe(0);
    expect(readFileSync(gw.file, 'utf8')).toContain(evil);

    // Traffic keeps flowing on version 1; some just before the screenshot so its figures are not idle.
    await traffic('/products/2', 30);
    await traffic('/m/products/3', 10);
    await waitUntil(
      async () =>
        Number(
          await page
            .locator('#traffic tbody tr', { hasText: 'm-products' })
            .locator('td')
            .nth(3)
            .textContent(),
        ) > 0,
      'a non-zero request rate for route m-products on the page',
    );
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard.png'), fullPage: true });
  });

  it('shows an applied reload: the new version, its routes, and no error box', async () => {
    const fixed = gatewayYaml(a, b).replace(
      'routes:\n',
      'routes:\n  - { name: added, match: { path: /added }, respond: { status: 204 } }\n',
    );
    writeFileSync(gw.file, fixed);
    await waitUntil(async () => (await fetch(gw.url + '/added')).status === 204, 'the reload to apply');
    // The button works (the 2 s timer would refresh too, so this does not prove it was the button).
    await page.getByRole('button', { name: 'Refresh now' }).click();
    await page.getByTestId('config-version').filter({ hasText: /^2$/ }).waitFor({ timeout: 5_000 });
    expect(await page.getByTestId('last-reload').textContent()).toMatch(/^applied version 2 at /);
    expect(await page.getByTestId('reload-errors').count()).toBe(0);
    await page
      .locator('#routes table', { hasText: 'Frontend default' })
      .locator('tr', { hasText: 'added' })
      .waitFor();
  });

  it('says the admin API is unreachable and keeps the last data on screen, marked stale', async () => {
    await gw.stop();
    const status = page.locator('#connection');
    await status.filter({ hasText: 'Cannot reach the admin API' }).waitFor({ timeout: 15_000 });
    expect(await status.textContent()).toMatch(/Showing stale data from/);
    expect(await page.locator('main.stale').count()).toBe(1);
    expect(await page.locator('#routes tr', { hasText: 'm-products' }).count()).toBe(1);
    expect(
      await page.locator('#services h2 .stale-note, #services-title .stale-note').first().isVisible(),
    ).toBe(true);
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-stale.png'), fullPage: true });
    // Only the failed fetches themselves may have been logged; no script error, no CSP violation.
    expect(pageErrors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(e))).toEqual([]);
  });
});
