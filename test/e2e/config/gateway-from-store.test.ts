import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CliProcess,
  freePort,
  runCli,
  spawnCli,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

/**
 * `trellis gateway --config-from URL#key@label`: the gateway takes its configuration from the
 * config store; a change there goes through the same validate-compile-swap as a file change, and
 * an invalid document is refused at write time by the gateway schema bound to the key.
 */
const WRITE = 'gw-write-token';
let dir: TempDir;
let server: CliProcess;
let gateway: CliProcess | undefined;
let serverUrl: string;
let gwPort: number;

const doc = (body: string) => `listen: { host: 127.0.0.1, port: ${gwPort} }
admin: { enabled: false }
routes:
  - match: { path: /hello }
    respond: { status: 200, body: ${body} }
`;

async function set(text: string) {
  return runCli(
    [
      'config',
      'set',
      'shop/gateway',
      dir.write(`gw-${Date.now()}.yaml`, text),
      '--label',
      'prod',
      '--server',
      serverUrl,
    ],
    {
      env: { TRELLIS_CONFIG_TOKEN: WRITE },
    },
  );
}

beforeAll(async () => {
  dir = tempDir('trellis-gw-config-');
  const schema = await runCli(['schema', 'gateway']);
  expect(schema.code).toBe(0);
  const schemaFile = dir.write('gateway.schema.json', schema.stdout);
  const port = await freePort();
  gwPort = await freePort();
  serverUrl = `http://127.0.0.1:${port}`;
  server = spawnCli(
    [
      'config',
      'serve',
      '--store',
      `sqlite:${join(dir.path, 'c.db')}`,
      '--listen',
      `127.0.0.1:${port}`,
      '--schema',
      `shop/gateway=${schemaFile}`,
    ],
    { env: { TRELLIS_CONFIG_WRITE_TOKEN: WRITE } },
  );
  await server.waitForOutput(/listening on/);
});

afterAll(async () => {
  await gateway?.stop();
  await server?.stop();
  dir?.cleanup();
});

describe('trellis gateway --config-from', () => {
  it('serves the stored configuration and swaps in each valid change', async () => {
    expect((await set(doc('one'))).code).toBe(0);
    gateway = spawnCli(['gateway', '--config-from', `${serverUrl}#shop/gateway@prod`], {
      env: { TRELLIS_CONFIG_TOKEN: WRITE },
    });
    await gateway.waitForOutput(/gateway started/);
    const hello = async () => (await fetch(`http://127.0.0.1:${gwPort}/hello`)).text();
    expect(await hello()).toBe('one');

    // Refused at write time by the schema: the gateway never sees it.
    const bad = await set(`${doc('two')}bogus: true\n`);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('TRELLIS_E_CONFIG_SCHEMA_VIOLATION');

    expect((await set(doc('three'))).code).toBe(0);
    await waitUntil(async () => (await hello()) === 'three', 'the gateway to swap in the new configuration');
    expect(gateway.output()).not.toContain('bogus');
  });
});
