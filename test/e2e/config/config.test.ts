import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConfigClient, createConfigClient } from '../../../src/config/client.js';
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
 * The External Configuration Store end to end: `trellis config serve` over SQLite in a child
 * process, the `trellis config` CLI against it and against the store directly, and a client that
 * rides out the server's death on its last-known-good copy.
 */
const READ = 'e2e-read-token';
const WRITE = 'e2e-write-token';
const SECRET_VALUE = 'hunter2-e2e-secret-value';

let dir: TempDir;
let port: number;
let storeUrl: string;
let server: CliProcess | undefined;
const outputs: string[] = [];

async function startServer(): Promise<CliProcess> {
  const p = spawnCli(
    [
      'config',
      'serve',
      '--store',
      storeUrl,
      '--listen',
      `127.0.0.1:${port}`,
      '--schema',
      `shop/=${join(dir.path, 'gateway.schema.json')}`,
    ],
    {
      env: { TRELLIS_CONFIG_READ_TOKEN: READ, TRELLIS_CONFIG_WRITE_TOKEN: WRITE, DB_PASSWORD: SECRET_VALUE },
    },
  );
  await p.waitForOutput(/listening on/);
  return p;
}

async function cli(args: string[], token = WRITE, input?: string) {
  const file =
    input === undefined ? [] : [dir.write(`in-${Math.random().toString(36).slice(2)}.yaml`, input)];
  const r = await runCli(['config', ...args, ...file, '--server', `http://127.0.0.1:${port}`], {
    env: { TRELLIS_CONFIG_TOKEN: token, TRELLIS_AUTHOR: 'e2e', DB_PASSWORD: SECRET_VALUE },
  });
  outputs.push(r.stdout, r.stderr);
  return r;
}

beforeAll(async () => {
  dir = tempDir('trellis-config-');
  storeUrl = `sqlite:${join(dir.path, 'config.db')}`;
  port = await freePort();
  dir.write(
    'gateway.schema.json',
    JSON.stringify({
      type: 'object',
      required: ['listen'],
      properties: {
        listen: { type: 'object', properties: { port: { type: 'integer', minimum: 1, maximum: 65535 } } },
        routes: { type: 'array', items: { type: 'object', required: ['path'] } },
      },
    }),
  );
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
  dir.cleanup();
});

describe('trellis config (server, CLI, client)', () => {
  it('refuses invalid documents with exact paths and changes nothing', async () => {
    const ok = await cli(
      ['set', 'shop/gateway', '--label', 'prod', '-m', 'first'],
      WRITE,
      'listen: { port: 8080 }\n',
    );
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/shop\/gateway@prod is now at revision \d+/);
    const bad = await cli(
      ['set', 'shop/gateway', '--label', 'prod'],
      WRITE,
      'listen: { port: 0 }\nroutes:\n  - {}\n',
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('TRELLIS_E_CONFIG_SCHEMA_VIOLATION');
    expect(bad.stderr).toContain('listen.port:');
    expect(bad.stderr).toContain('routes[0].path:');
    const got = await cli(['get', 'shop/gateway', '--label', 'prod'], READ);
    expect(got.stdout).toBe('listen: { port: 8080 }\n');
    const readOnly = await cli(['set', 'shop/gateway', '--label', 'prod'], READ, 'listen: { port: 1 }\n');
    expect(readOnly.stderr).toContain('TRELLIS_E_CONFIG_FORBIDDEN');
  });

  it('applies If-Match, shows diffs, keeps history and rolls back', async () => {
    const v1 = JSON.parse((await cli(['get', 'shop/gateway', '--label', 'prod', '--json'], READ)).stdout);
    const diff = await cli(
      ['diff', 'shop/gateway', '--label', 'prod'],
      READ,
      'listen: { port: 9090 }\nroutes: [{ path: /a }]\n',
    );
    expect(diff.stdout).toContain('~ listen.port: 8080 -> 9090');
    expect(diff.stdout).toContain('+ routes: [{"path":"/a"}]');
    const v2 = await cli(
      ['set', 'shop/gateway', '--label', 'prod', '--if-match', String(v1.revision), '-m', 'port 9090'],
      WRITE,
      'listen: { port: 9090 }\n',
    );
    expect(v2.code).toBe(0);
    const stale = await cli(
      ['set', 'shop/gateway', '--label', 'prod', '--if-match', String(v1.revision)],
      WRITE,
      'listen: { port: 7 }\n',
    );
    expect(stale.stderr).toContain('TRELLIS_E_CONFIG_REVISION_MISMATCH');
    const back = await cli(
      ['rollback', 'shop/gateway', String(v1.revision), '--label', 'prod', '-m', 'bad port'],
      WRITE,
    );
    expect(back.stdout).toContain(`rolled back to revision ${v1.revision}`);
    expect((await cli(['get', 'shop/gateway', '--label', 'prod'], READ)).stdout).toBe(
      'listen: { port: 8080 }\n',
    );
    const history = JSON.parse(
      (await cli(['history', 'shop/gateway', '--label', 'prod', '--json'], READ)).stdout,
    );
    expect(history.map((h: { message: string }) => h.message)).toEqual([
      `rollback to revision ${v1.revision}: bad port`,
      'port 9090',
      'first',
    ]);
    expect(history.every((h: { author: string; time: string }) => h.author === 'e2e' && h.time)).toBe(true);
  });

  it('never prints a secret: documents hold references, plain values in secret fields are refused', async () => {
    const plain = await cli(['set', 'app/db'], WRITE, `password: ${SECRET_VALUE}\n`);
    expect(plain.stderr).toContain('password: holds a plain value');
    const ref = await cli(
      ['set', 'app/db', '-m', 'db creds'],
      WRITE,
      'host: db1\npassword: secret://env/DB_PASSWORD\n',
    );
    expect(ref.code).toBe(0);
    await cli(['get', 'app/db', '--json'], READ);
    await cli(['history', 'app/db', '--json'], READ);
    await cli(['list', 'app/', '--json'], READ);
    // The client resolves the reference in its own process only.
    const client = await createConfigClient({
      source: `http://127.0.0.1:${port}`,
      token: READ,
      prefix: 'app/',
      env: { DB_PASSWORD: SECRET_VALUE },
    });
    expect(client.get('app/db')).toEqual({ host: 'db1', password: SECRET_VALUE });
    outputs.push(JSON.stringify(client.health()), JSON.stringify(client.document('app/db')));
    await client.close();
    for (const o of [...outputs, server!.output()]) expect(o).not.toContain(SECRET_VALUE);
  });

  it('a client serves last-known-good while the server is down and catches up when it returns', async () => {
    const cacheFile = join(dir.path, 'lkg', 'shop.json');
    const clients: ConfigClient[] = [];
    const open = async () => {
      const c = await createConfigClient({
        source: `http://127.0.0.1:${port}`,
        token: READ,
        prefix: 'shop/',
        label: 'prod',
        cacheFile,
        backoff: { initialMs: 50, maxMs: 300 },
      });
      clients.push(c);
      return c;
    };
    try {
      const live = await open();
      expect(live.get('shop/gateway')).toEqual({ listen: { port: 8080 } });
      const seen: number[] = [];
      live.subscribe((c) => seen.push((c.document!.value as { listen: { port: number } }).listen.port));
      await waitUntil(() => existsSync(cacheFile), 'the last-known-good copy');

      await server!.stop('SIGKILL');
      await waitUntil(() => live.health().source === 'last-known-good', 'the client to notice the outage');
      expect(live.health().ok).toBe(false);
      expect(live.get('shop/gateway')).toEqual({ listen: { port: 8080 } });
      // A process starting during the outage comes up on the copy on disk.
      const cold = await open();
      expect(cold.health()).toMatchObject({ ok: false, source: 'last-known-good' });
      expect(cold.get('shop/gateway')).toEqual({ listen: { port: 8080 } });

      // Changes made directly in the store during the outage…
      for (const p of [8081, 8082]) {
        const r = await runCli([
          'config',
          'set',
          'shop/gateway',
          dir.write(`p${p}.yaml`, `listen: { port: ${p} }\n`),
          '--label',
          'prod',
          '--store',
          storeUrl,
        ]);
        expect(r.code).toBe(0);
      }
      // …arrive in order once the server is back.
      server = await startServer();
      await waitUntil(() => live.health().ok && seen.at(-1) === 8082, 'the live client to catch up', 20_000);
      expect(seen).toEqual([8081, 8082]);
      await waitUntil(
        () =>
          cold.health().ok && (cold.get('shop/gateway') as { listen: { port: number } }).listen.port === 8082,
        'the cold client to catch up',
        20_000,
      );
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('streams changes with trellis config watch, resuming from a revision', async () => {
    const start = JSON.parse((await cli(['get', 'shop/gateway', '--label', 'prod', '--json'], READ)).stdout);
    const watcher = spawnCli(
      [
        'config',
        'watch',
        'shop/',
        '--label',
        'prod',
        '--from',
        String(start.revision),
        '--server',
        `http://127.0.0.1:${port}`,
      ],
      {
        env: { TRELLIS_CONFIG_TOKEN: READ },
      },
    );
    try {
      await cli(
        ['set', 'shop/gateway', '--label', 'prod', '-m', 'watched'],
        WRITE,
        'listen: { port: 8083 }\n',
      );
      const line = await watcher.waitForOutput(/ put shop\/gateway by e2e: watched/).catch((err) => {
        throw new Error(`${err.message}\nwatch output:\n${watcher.output()}`);
      });
      expect(Number(line.split(' ')[0])).toBeGreaterThan(start.revision);
    } finally {
      await watcher.stop('SIGINT');
    }
  });
});
