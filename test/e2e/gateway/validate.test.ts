import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runCli, type TempDir, tempDir, waitUntil } from '../support/index.js';

/**
 * `trellis validate` refuses what parses but cannot run (clashes, files that are not there),
 * with FILE:LINE:COLUMN, both sides named, in line order; and the configuration-file
 * ergonomics new users trip on (`${PORT}`, YAML syntax errors, typos, mistyped flags).
 */
let dir: TempDir;
beforeAll(() => {
  dir = tempDir('trellis-validate-');
});
afterAll(() => dir.cleanup());

const validate = (name: string, yaml: string, env: Record<string, string> = {}) =>
  runCli(['validate', dir.write(name, yaml)], { env });

describe('trellis validate: clashes that cannot run', () => {
  it('refuses the admin port on a listener port, two frontends on one port, alike frontends, duplicate route names', async () => {
    const file = join(dir.path, 'clash.yaml');
    const r = await validate(
      'clash.yaml',
      `listen:
  port: 8080
admin:
  port: 8080
frontends:
  web:
    pathPrefix: /web
  web2:
    pathPrefix: /web/
  a:
    listen: { port: 9000 }
  b:
    listen: { port: 9000 }
routes:
  - name: catalog
    respond: {}
  - name: catalog
    respond: {}
`,
    );
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `${file}:4:9 admin.port: port 8080 is already used by listen.port: give each listener its own port (listen.port is at line 2)`,
      `${file}:9:17 frontends.web2.pathPrefix: frontend "web2" selects the same requests as frontend "web" (pathPrefix /web): give each frontend its own pathPrefix or host (frontends.web.pathPrefix is at line 7)`,
      `${file}:13:21 frontends.b.listen.port: port 9000 is already used by frontends.a.listen.port: give each listener its own port (frontends.a.listen.port is at line 11)`,
      `${file}:17:11 routes[1].name: route name "catalog" is already used by routes[0]: give each route its own name (their metrics and logs would merge) (routes[0].name is at line 15)`,
    ]);
  });
});

describe('trellis validate: files the configuration refers to', () => {
  it('fails with file:line when a certificate, key, JWKS file or client CA is missing or unreadable', async () => {
    mkdirSync(join(dir.path, 'certs'), { recursive: true });
    dir.write('certs/gw.pem', 'not checked for content here');
    const locked = dir.write('certs/locked.json', '{}');
    chmodSync(locked, 0o000);
    const file = join(dir.path, 'files.yaml');
    const r = await validate(
      'files.yaml',
      `listen:
  port: 8443
  tls:
    cert: certs/gw.pem
    key: certs/gw-key.pem
middlewares:
  auth:
    jwt: { jwksFile: certs/locked.json, issuer: i, audience: a }
  other:
    jwt: { jwksFile: ./nope/jwks.json, issuer: i, audience: a }
`,
    );
    chmodSync(locked, 0o600);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(
      `${file}:5:10 listen.tls.key: private key ${join(dir.path, 'certs/gw-key.pem')} does not exist (relative paths start at the configuration file's folder)`,
    );
    // Root can read a file whatever its mode: then only the missing ones are reported.
    const root = process.getuid?.() === 0;
    expect(lines.slice(1)).toEqual([
      ...(root
        ? []
        : [
            `${file}:8:22 middlewares.auth.jwt.jwksFile: JWKS file ${locked} cannot be read: check its permissions`,
          ]),
      `${file}:10:22 middlewares.other.jwt.jwksFile: JWKS file ${join(dir.path, 'nope/jwks.json')} does not exist (relative paths start at the configuration file's folder)`,
    ]);
  });

  it('checks static roots (not s3:// ones) and translation files of routes too', async () => {
    const st = await validate(
      'static.yaml',
      'routes:\n  - match: { pathPrefix: /s }\n    static: { root: s3://bucket/site }\n  - match: { pathPrefix: /f }\n    static: { root: ./nope }\n',
    );
    expect(st.code).toBe(1);
    expect(st.stderr).toBe(
      `${join(dir.path, 'static.yaml')}:5:21 routes[1].static.root: static root ${join(dir.path, 'nope')} does not exist (relative paths start at the configuration file's folder)\n`,
    );
    const file = join(dir.path, 'acl.yaml');
    const r = await validate(
      'acl.yaml',
      'routes:\n  - match: { path: /legacy }\n    translate: { file: ./acl/missing.yaml }\n',
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `${file}:3:24 routes[0].translate.file: translation file ${join(dir.path, 'acl/missing.yaml')} does not exist (relative paths start at the configuration file's folder)\n`,
    );
  });
});

describe('configuration files: what new users trip on', () => {
  it('${PORT} works for a number field, and a PORT that is not a number is a clear error', async () => {
    const yaml = 'listen: { port: ${PORT} }\nroutes:\n  - respond: {}\n';
    expect(await validate('port.yaml', yaml, { PORT: '8081' })).toMatchObject({ code: 0 });
    const bad = await validate('port.yaml', yaml, { PORT: 'eighty' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(
      `${join(dir.path, 'port.yaml')}:1:17 listen.port: \${PORT} is "eighty", which is not a number: set it to a number like 8080\n`,
    );
  });

  it('a gateway really listens on ${PORT}', async () => {
    const port = await freePort();
    const file = dir.write(
      'run.yaml',
      'listen: { port: ${PORT} }\nadmin: { enabled: false }\nroutes:\n  - respond: { body: hi }\n',
    );
    const { spawnCli } = await import('../support/index.js');
    const gw = spawnCli(['gateway', '-c', file], { env: { PORT: String(port) } });
    try {
      await gw.waitForOutput(/gateway started/);
      const body = await waitUntil(
        async () => (await fetch(`http://127.0.0.1:${port}/`)).text(),
        'the gateway',
      );
      expect(body).toBe('hi');
    } finally {
      await gw.stop();
    }
  });

  it('a YAML syntax error prints the first error with its line and a caret, and nothing after it', async () => {
    const r = await validate('syntax.yaml', 'listen:\n  port: [1, 2\nroutes:\n  - a: b\n  - c: d\n');
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/syntax\.yaml:3:1 invalid YAML: /);
    expect(lines.slice(1)).toEqual(['  3 | routes:', '    | ^']);
  });

  it('a YAML alias bomb is refused with the file name', async () => {
    const rows = ['a: &a [x,x,x,x,x,x,x,x,x]'];
    for (const n of ['b', 'c', 'd', 'e', 'f']) {
      const prev = String.fromCharCode(n.charCodeAt(0) - 1);
      rows.push(`${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const r = await validate('bomb.yaml', `${rows.join('\n')}\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^${join(dir.path, 'bomb.yaml')}:1:1 refused: Excessive alias count`),
    );
  });

  it('errors come in line order, a missing field is named, and typos get a suggestion', async () => {
    const file = join(dir.path, 'typos.yaml');
    const r = await validate(
      'typos.yaml',
      `services:
  beta: { upstreams: [http://127.0.0.1:1] }
routes:
  - match: { path: /b }
    proxy: { service: btea }
  - match: { path: /a }
    proxy: {}
middlewares:
  auth:
    jwt: { jwks: "https://idp.example.com/jwks.json", issuer: i, audience: a }
listen: {}
`,
    );
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `${file}:7:12 routes[1].proxy.service: missing required field "service" (expected string)`,
      `${file}:10:18 middlewares.auth.jwt.jwks: expected object, received string (did you mean "jwksUrl"?)`,
      `${file}:11:9 listen.port: missing required field "port" (expected number)`,
    ]);
    // References are checked once the file has the right shape: a swap of two letters is one typo.
    const swap = await validate(
      'swap.yaml',
      'services:\n  beta: { upstreams: [http://127.0.0.1:1] }\nroutes:\n  - match: { path: /b }\n    proxy: { service: btea }\n',
    );
    expect(swap.stderr).toBe(
      `${join(dir.path, 'swap.yaml')}:5:23 routes[0].proxy.service: unknown service "btea" (did you mean "beta"?): define it under services:\n`,
    );
  });
});
