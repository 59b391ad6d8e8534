import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

// Debian's Chromium, never a downloaded one. Under CI a missing browser fails the tier; on a
// developer machine the tier is skipped with a message saying how to enable it.
const CHROMIUM = '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI === 'true') {
  throw new Error(
    `${CHROMIUM} is missing: the browser tier needs Debian's chromium (apt-get install -y chromium)`,
  );
}
if (!hasChromium) {
  console.warn(`browser tier skipped: ${CHROMIUM} not found (apt-get install -y chromium to run it)`);
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Script errors, CSP violations and console errors the page produced. */
  pageErrors: string[];
  close(): Promise<void>;
}

/** Headless Chromium with a fresh profile, flags that keep it off this machine's closed network. */
export async function launchChromium(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'trellis-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });
  return {
    context,
    page,
    pageErrors,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
