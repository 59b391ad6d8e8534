import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli, type TempDir, tempDir } from '../support/index.js';

/**
 * `trellis gateway --config-from` when the stored configuration cannot run: the process exits 1
 * (as `-c FILE` does) instead of staying alive on the store client with nothing listening.
 */
let dir: TempDir;
let holder: Server;
let taken: number;

beforeAll(async () => {
  dir = tempDir('trellis-gw-store-fail-');
  holder = createServer((_req, res) => res.end('someone else'));
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  taken = (holder.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => holder.close(r));
  dir?.cleanup();
});

describe('trellis gateway --config-from, when a listener fails', () => {
  it('exits 1 with a message that says the port is taken', async () => {
    const store = `sqlite:${join(dir.path, 'c.db')}`;
    const file = dir.write(
      'gw.yaml',
      `listen: { host: 127.0.0.1, port: ${taken} }
admin: { enabled: false }
routes:
  - { match: { path: / }, respond: { status: 200, body: ok } }
`,
    );
    const set = await runCli(['config', 'set', 'shop/gateway', file, '--store', store]);
    expect(set.code, set.stderr).toBe(0);
    const gw = spawnCli(['gateway', '--config-from', `${store}#shop/gateway`]);
    const timer = setTimeout(() => gw.child.kill('SIGKILL'), 20_000);
    const { code, signal } = await gw.exited;
    clearTimeout(timer);
    expect(signal).toBeNull();
    expect(code).toBe(1);
    expect(gw.output()).toMatch(/TRELLIS_E_LISTEN_FAILED/);
    expect(gw.output()).toMatch(/address is taken/);
  });
});
