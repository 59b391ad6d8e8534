import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdminServer, createAdminServer } from '../server.js';

describe('admin listener: dashboard files', () => {
  let admin: AdminServer;
  let base: string;

  beforeAll(async () => {
    admin = createAdminServer({
      registry: new Registry(),
      ready: () => true,
      routes: () => ({ version: 1, frontends: {} }),
      services: () => ({ services: [] }),
      config: () => ({ version: 1 }),
    });
    const { port } = await admin.listen('127.0.0.1', 0);
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(() => admin.close());

  it.each(['/', '/dashboard'])('serves the page at %s under a same-origin-only CSP', async (path) => {
    const res = await fetch(base + path);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toMatch(/^default-src 'self'/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await res.text();
    expect(html).toContain('<script type="module" src="/dashboard/app.js">');
    // Nothing inline and nothing from elsewhere: the CSP would block it.
    expect(html).not.toMatch(/<script>|style=|https?:\/\//);
  });

  it('serves the module and stylesheet with their types, and answers HEAD without a body', async () => {
    for (const [path, type] of [
      ['/dashboard/app.js', 'text/javascript'],
      ['/dashboard/metrics.js', 'text/javascript'],
      ['/dashboard/style.css', 'text/css'],
    ] as const) {
      const res = await fetch(base + path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      expect((await res.text()).length).toBeGreaterThan(100);
    }
    const head = await fetch(`${base}/dashboard/app.js`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('leaves other paths to the admin API', async () => {
    const res = await fetch(`${base}/dashboard/../../etc/passwd`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });
});
