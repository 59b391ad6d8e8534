import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway } from '../gateway/gateway.js';
import { rawGet } from './testing/raw.js';

// Bad input: every spelling of "a file outside the root" must fail, under every gateway
// encoded-slash policy, and never return the secret's bytes.
const SECRET = 'TOP-SECRET-OUTSIDE-ROOT';

const PROBES: (string | Buffer)[] = [
  '/../secret.txt',
  '/..%2fsecret.txt',
  '/..%2Fsecret.txt',
  '/%2e%2e/secret.txt',
  '/%2E%2E/secret.txt',
  '/%2e%2e%2fsecret.txt',
  '/.%2e/secret.txt',
  '/%2e./secret.txt',
  '/..%5csecret.txt',
  '/..%5Csecret.txt',
  '/..\\secret.txt',
  '/\\..\\secret.txt',
  '/%5c..%5csecret.txt',
  '/%252e%252e/secret.txt',
  '/%252e%252e%252fsecret.txt',
  '/..%252fsecret.txt',
  '/%c0%ae%c0%ae/secret.txt',
  '/%c0%ae%c0%ae%c0%afsecret.txt',
  '/%e0%80%ae%e0%80%ae/secret.txt',
  '/%c0%af..%c0%afsecret.txt',
  '/%c1%9c..%c1%9csecret.txt',
  '/..%00/secret.txt',
  '/secret.txt%00.html',
  '/index.html%00',
  Buffer.from('/..\x00/secret.txt', 'latin1'),
  '/....//secret.txt',
  '/..;/secret.txt',
  '/.../secret.txt',
  '/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
  '/..%2f..%2f..%2f..%2fetc%2fpasswd',
  '//etc/passwd',
  '/\\etc\\passwd',
  '/%5cetc%5cpasswd',
  '/%2fetc%2fpasswd',
  '/%u002e%u002e/secret.txt',
  '/.%00./secret.txt',
  '/assets/../../secret.txt',
  '/assets/%2e%2e/%2e%2e/secret.txt',
  '/link-out',
  '/linkdir/secret.txt',
  '/linkdir/root/../secret.txt',
  '/.env',
  '/.git/config',
  '/assets/.hidden',
  '/.trellis/precompressed.json',
  'http://localhost/../secret.txt',
  '/%ff%fe/secret.txt',
  '/assets%2f..%2f..%2fsecret.txt',
];

describe('static: traversal and encoding probes', () => {
  let dir: string;
  const gateways: Gateway[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-static-traversal-'));
    const root = join(dir, 'root');
    mkdirSync(join(root, 'assets'), { recursive: true });
    mkdirSync(join(root, '.git'));
    writeFileSync(join(dir, 'secret.txt'), SECRET);
    writeFileSync(join(root, 'index.html'), '<p>home</p>');
    writeFileSync(join(root, 'assets', 'app.js'), 'console.log(1)');
    writeFileSync(join(root, 'assets', '.hidden'), SECRET);
    writeFileSync(join(root, '.env'), SECRET);
    writeFileSync(join(root, '.git', 'config'), SECRET);
    symlinkSync(join(dir, 'secret.txt'), join(root, 'link-out'));
    symlinkSync(dir, join(root, 'linkdir'));
    symlinkSync(join(root, 'index.html'), join(root, 'link-in.html'));
    for (const policy of ['reject', 'decode', 'keep']) {
      gateways.push(
        await startGateway({
          text: `listen: { port: 0, host: 127.0.0.1 }
admin: { enabled: false }
encodedSlashes: ${policy}
routes:
  - match: { path: /* }
    static: { root: ${JSON.stringify(root)}, spa: true }
`,
        }),
      );
    }
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop(1_000)));
    rmSync(dir, { recursive: true, force: true });
  });

  it('has at least 30 spellings', () => {
    expect(PROBES.length).toBeGreaterThanOrEqual(30);
  });

  for (const [i, policy] of ['reject', 'decode', 'keep'].entries()) {
    it(`never serves outside the root (encodedSlashes: ${policy})`, async () => {
      const port = gateways[i]!.ports.main!;
      for (const probe of PROBES) {
        const reply = await rawGet(port, probe);
        const body = reply.body.toString('latin1');
        const label = typeof probe === 'string' ? probe : JSON.stringify(probe.toString('latin1'));
        expect(body, label).not.toContain(SECRET);
        expect(body, label).not.toMatch(/root:.*:0:0:/);
        // Refused (400/404), or the SPA page for a path that is only odd-looking inside the root.
        if (reply.status === 200) expect(body, label).toBe('<p>home</p>');
        else expect([400, 404], label).toContain(reply.status);
      }
    });
  }

  it('follows a symlink that stays inside the root', async () => {
    const reply = await rawGet(gateways[0]!.ports.main!, '/link-in.html');
    expect(reply.status).toBe(200);
    expect(reply.body.toString()).toBe('<p>home</p>');
  });
});
