import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../core/config.js';
import { gatewayDocumentValidator } from './document-validator.js';
import { referencedFileProblem, referencedFiles } from './referenced-files.js';
import { gatewaySchema } from './schema.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-refs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('referencedFiles', () => {
  it('lists certificates, keys, client CAs and JWKS files with where they are named, resolved from baseDir', () => {
    const config = parseConfig(
      `listen:
  port: 8443
  tls: { cert: a.pem, key: a-key.pem, clientCa: ca.pem, certificates: [ { cert: b.pem, key: /abs/b-key.pem } ] }
frontends:
  admin: { listen: { port: 9443, tls: { cert: c.pem, key: c-key.pem } } }
middlewares:
  auth: { jwt: { jwksFile: keys/jwks.json, issuer: i, audience: a } }
`,
      gatewaySchema(),
      'gw.yaml',
    );
    const refs = referencedFiles(config, dir);
    expect(refs.map((r) => [r.path.join('.'), r.file, r.what])).toEqual([
      ['listen.tls.cert', join(dir, 'a.pem'), 'certificate'],
      ['listen.tls.key', join(dir, 'a-key.pem'), 'private key'],
      ['listen.tls.clientCa', join(dir, 'ca.pem'), 'client CA bundle'],
      ['listen.tls.certificates.0.cert', join(dir, 'b.pem'), 'certificate'],
      ['listen.tls.certificates.0.key', '/abs/b-key.pem', 'private key'],
      ['frontends.admin.listen.tls.cert', join(dir, 'c.pem'), 'certificate'],
      ['frontends.admin.listen.tls.key', join(dir, 'c-key.pem'), 'private key'],
      ['middlewares.auth.jwt.jwksFile', join(dir, 'keys/jwks.json'), 'JWKS file'],
    ]);
    writeFileSync(join(dir, 'a.pem'), 'x');
    expect(referencedFileProblem(refs[0]!)).toBeUndefined();
    expect(referencedFileProblem(refs[1]!)).toMatch(/private key .*a-key\.pem does not exist/);
    expect(referencedFileProblem({ ...refs[0]!, file: dir })).toMatch(/is a folder, not a file/);
  });
});

describe('gatewayDocumentValidator', () => {
  it('gives the gateway messages with the key as file name, and does not judge ${NAME} it cannot know', () => {
    expect(gatewayDocumentValidator.validate('listen: { port: ${PORT} }\n', 'shop/gw')).toEqual([]);
    expect(
      gatewayDocumentValidator.validate(
        'routes:\n  - match: { path: /a }\n    proxy: { service: nope }\n',
        'shop/gw',
      ),
    ).toEqual([
      {
        line: 3,
        column: 23,
        path: 'routes[0].proxy.service',
        message: 'unknown service "nope": define it under services:',
      },
    ]);
  });
});
