import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, freePort, runCli, spawnCli, type TempDir, tempDir } from '../support/index.js';

/**
 * The configuration store refuses what would do harm, and says so plainly: keys that a URL
 * would rewrite, documents the gateway would refuse (bound to the gateway's own validator),
 * bad input as a 400 in our words; and `config watch` shows what changed.
 */
const READ = 'ctl-read';
const WRITE = 'ctl-write';

let dir: TempDir;
let port: number;
let storeUrl: string;
let server: CliProcess;

async function cli(args: string[], input?: string, token = WRITE) {
  const file =
    input === undefined ? [] : [dir.write(`in-${Math.random().toString(36).slice(2)}.yaml`, input)];
  return runCli(['config', ...args, ...file, '--server', `http://127.0.0.1:${port}`], {
    env: { TRELLIS_CONFIG_TOKEN: token, TRELLIS_AUTHOR: 'ctl' },
  });
}

beforeAll(async () => {
  dir = tempDir('trellis-config-ctl-');
  storeUrl = `sqlite:${join(dir.path, 'config.db')}`;
  port = await freePort();
  server = spawnCli(
    ['config', 'serve', '--store', storeUrl, '--listen', `127.0.0.1:${port}`, '--validator', 'shop/=gateway'],
    { env: { TRELLIS_CONFIG_READ_TOKEN: READ, TRELLIS_CONFIG_WRITE_TOKEN: WRITE } },
  );
  await server.waitForOutput(/listening on/);
});

afterAll(async () => {
  await server?.stop();
  dir.cleanup();
});

const GATEWAY = `services:
  catalog: { upstreams: ["http://127.0.0.1:3001"] }
routes:
  - match: { path: /a }
    proxy: { service: catalog }
listen: { port: \${PORT:-8080} }
`;

describe('config store: what it refuses', () => {
  it('refuses "." and ".." key segments instead of writing somewhere else, and never prints undefined', async () => {
    const before = await cli(['schema', 'list', '--json'], undefined, READ);
    const r = await cli(['set', 'x/../../schemas/shop'], '{"type": "object"}');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('TRELLIS_E_CONFIG_KEY_INVALID');
    expect(r.stderr).toContain('"." and ".." are not allowed as segments');
    expect(`${r.stdout}${r.stderr}`).not.toContain('undefined');
    expect((await cli(['schema', 'list', '--json'], undefined, READ)).stdout).toBe(before.stdout);
    // Straight to the store too.
    const direct = await runCli([
      'config',
      'set',
      'a/./b',
      dir.write('d.yaml', 'x: 1\n'),
      '--store',
      storeUrl,
    ]);
    expect(direct.code).toBe(1);
    expect(direct.stderr).toContain('TRELLIS_E_CONFIG_KEY_INVALID');
  });

  it("refuses a gateway document the gateway would refuse, with the gateway's KEY:LINE:COL messages", async () => {
    const ok = await cli(['set', 'shop/gateway', '--label', 'prod'], GATEWAY);
    expect(ok).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^shop\/gateway@prod is now at revision \d+\n$/),
    });
    const bad = await cli(
      ['set', 'shop/gateway', '--label', 'prod'],
      GATEWAY.replace('service: catalog }', 'service: catalgo }'),
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('TRELLIS_E_CONFIG_SCHEMA_VIOLATION');
    expect(bad.stderr).toContain(
      'shop/gateway:5:23 routes[0].proxy.service: unknown service "catalgo" (did you mean "catalog"?): define it under services:',
    );
    const now = JSON.parse(
      (await cli(['get', 'shop/gateway', '--label', 'prod', '--json'], undefined, READ)).stdout,
    );
    expect(now.content).toBe(GATEWAY);
    // The binding is stored: a write straight to the store is checked the same way.
    const direct = await runCli([
      'config',
      'set',
      'shop/gateway',
      dir.write('clash.yaml', 'listen: { port: 8080 }\nadmin: { port: 8080 }\n'),
      '--label',
      'prod',
      '--store',
      storeUrl,
    ]);
    expect(direct.code).toBe(1);
    expect(direct.stderr).toContain('shop/gateway:2:16 admin.port: port 8080 is already used by listen.port');
  });

  it('answers bad input with 400 and a clear message, not 500 and "unexpected error"', async () => {
    const rows = ['a: &a [x,x,x,x,x,x,x,x,x]'];
    for (const n of ['b', 'c', 'd', 'e', 'f']) {
      const prev = String.fromCharCode(n.charCodeAt(0) - 1);
      rows.push(`${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const bomb = `${rows.join('\n')}\n`;
    const r = await cli(['set', 'app/bomb'], bomb);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^TRELLIS_E_CONFIG_DOCUMENT_INVALID: the document was refused: Excessive alias count/,
    );
    expect(r.stderr).not.toContain('unexpected error');
    const res = await fetch(`http://127.0.0.1:${port}/v1/config/app/bomb`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${WRITE}`, 'content-type': 'application/yaml' },
      body: bomb,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'TRELLIS_E_CONFIG_DOCUMENT_INVALID' });
    // A file that is not there is said so, not an unexpected ENOENT.
    const noFile = await runCli(['config', 'set', 'app/x', join(dir.path, 'nope.yaml'), '--store', storeUrl]);
    expect(noFile.code).toBe(1);
    expect(noFile.stderr).toMatch(/^TRELLIS_E_CONFIG_UNREADABLE: .*nope\.yaml: no such file: check the path/);
  });
});

describe('config CLI: advice that helps', () => {
  it('plain config watch prints the new value, then a diff for each change', async () => {
    await cli(['set', 'app/watched'], 'port: 1\nname: a\n');
    const watcher = spawnCli(['config', 'watch', 'app/', '--server', `http://127.0.0.1:${port}`], {
      env: { TRELLIS_CONFIG_TOKEN: READ },
    });
    try {
      await watcher.waitForOutput(/^watching app\/@default after revision \d+/);
      await cli(['set', 'app/watched', '-m', 'bump'], 'port: 2\nname: a\n');
      await watcher.waitForOutput(/^ {4}~ port: 1 -> 2$/);
      await cli(['set', 'app/fresh'], 'hello: world\n');
      await watcher.waitForOutput(/^ {4}hello: world$/);
      const out = watcher.output();
      expect(out).toMatch(/\d+ put app\/watched by ctl: bump\n {4}~ port: 1 -> 2\n/);
      expect(out).toMatch(/\d+ put app\/fresh by ctl\n {4}hello: world\n/);
    } finally {
      await watcher.stop('SIGINT');
    }
  });

  it('a missing key has a TRELLIS_E_ code, and the rollback hint keeps --label', async () => {
    const get = await cli(['get', 'app/nothing-here', '--label', 'prod'], undefined, READ);
    expect(get.code).toBe(1);
    expect(get.stderr).toBe(
      'TRELLIS_E_CONFIG_NOT_FOUND: app/nothing-here@prod does not exist: see what there is with `trellis config list --label prod`\n',
    );
    const rollback = await cli(['rollback', 'shop/gateway', '999999', '--label', 'prod']);
    expect(rollback.code).toBe(1);
    expect(rollback.stderr).toContain('pick one from `trellis config history shop/gateway --label prod`');
    const history = await cli(['history', 'shop/gateway', '--label', 'prod'], undefined, READ);
    expect(history.stdout).not.toBe('');
  });

  it("a mistyped flag gets a did-you-mean, not Node's parseArgs text", async () => {
    const r = await runCli(['leader', 'run', '--grop', 'jobs', '--store', 'memory:', '--', 'true']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^TRELLIS_E_USAGE: unknown option --grop \(did you mean --group\?\)\n/);
    const missing = await cli(['list', '--label']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^TRELLIS_E_USAGE: --label needs a value/);
    const sub = await cli(['lsit']);
    expect(sub.stderr).toMatch(/^TRELLIS_E_USAGE: unknown subcommand "lsit" \(did you mean "list"\?\)/);
  });

  it('trellis gateway -c missing.yaml and --log-level loud are as friendly as validate', async () => {
    const missing = join(dir.path, 'missing.yaml');
    const r = await runCli(['gateway', '-c', missing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^TRELLIS_E_CONFIG_UNREADABLE: ${missing}: no such file: check the path`),
    );
    const file = dir.write(
      'gw.yaml',
      'listen: { port: 0 }\nadmin: { enabled: false }\nroutes:\n  - respond: {}\n',
    );
    const loud = await runCli(['gateway', '-c', file, '--log-level', 'loud']);
    expect(loud.code).toBe(1);
    expect(loud.stderr).toBe(
      'TRELLIS_E_LOG_LEVEL_INVALID: log level "loud" is not a level: use one of trace, debug, info, warn, error, fatal, silent\n',
    );
  });
});
