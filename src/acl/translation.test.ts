import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { recordCase, runGolden } from './golden.js';
import { translateSchema } from './schema.js';
import { createTranslation, type TranslationError } from './translation.js';
import type { ModernRequest } from './types.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-acl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const req = (over: Partial<ModernRequest> = {}): ModernRequest => ({
  method: 'POST',
  path: '/x',
  params: {},
  query: {},
  headers: {},
  body: undefined,
  ...over,
});
const refusal = async (p: Promise<unknown>) =>
  (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as TranslationError;

describe('translations', () => {
  it('runs a code translator module with its zod contract', async () => {
    writeFileSync(
      join(dir, 'tr.mjs'),
      `import { z } from 'zod';
export const requestContract = z.object({ n: z.number().int() });
export function toLegacy(r) { return { method: 'POST', path: '/legacy', headers: { 'x-a': '1' }, body: { N: String(r.body.n * 2) } }; }
export function fromLegacy(a) { return { status: 201, body: { doubled: Number(a.body.N) } }; }
`,
    );
    const t = await createTranslation(
      translateSchema.parse({
        service: 's',
        legacy: { format: 'json', path: '/legacy' },
        module: './tr.mjs',
      }),
      { baseDir: dir },
    );
    const legacy = await t.toLegacy(req({ body: { n: 21 } }));
    expect([legacy.method, legacy.path, legacy.headers['x-a'], legacy.body?.toString()]).toEqual([
      'POST',
      '/legacy',
      '1',
      '{"N":"42"}',
    ]);
    expect(await t.fromLegacy(200, {}, Buffer.from('{"N":"42"}'), req())).toEqual({
      status: 201,
      body: { doubled: 42 },
    });
    const bad = await refusal(t.toLegacy(req({ body: { n: 1.5 } })));
    expect([bad.httpStatus, bad.code, (bad.extensions.errors as { path: string }[])[0]!.path]).toEqual([
      422,
      'TRELLIS_E_ACL_REQUEST_INVALID',
      'n',
    ]);
  });

  it('refuses a module without both functions, and a missing one at load', async () => {
    writeFileSync(join(dir, 'half.mjs'), 'export function toLegacy() {}\n');
    const opts = (module: string) =>
      translateSchema.parse({ service: 's', legacy: { format: 'json', path: '/' }, module });
    await expect(createTranslation(opts('./half.mjs'), { baseDir: dir })).rejects.toThrow(
      'must export toLegacy and fromLegacy',
    );
    await expect(createTranslation(opts('./nope.mjs'), { baseDir: dir })).rejects.toThrow(
      'cannot load the translator module',
    );
  });

  it('maps faults inside a 200 and error statuses, keeping legacy text out of the message', async () => {
    const t = await createTranslation(
      translateSchema.parse({
        service: 's',
        legacy: { format: 'json', path: '/', faultWhen: { path: 'rc', ok: ['0'], message: 'text' } },
        toLegacy: { a: { const: 1 } },
        fromLegacy: { v: 'v' },
        faults: { E42: { status: 409, fault: 'busy', detail: 'try later' } },
      }),
      { baseDir: dir },
    );
    const mapped = await refusal(
      t.fromLegacy(200, {}, Buffer.from('{"rc":"E42","text":"SECRET DB ERROR"}'), req()),
    );
    expect([mapped.httpStatus, mapped.extensions.fault, mapped.message]).toEqual([409, 'busy', 'try later']);
    expect(mapped.log).toMatchObject({ legacyFault: { code: 'E42', message: 'SECRET DB ERROR' } });
    const unmapped = await refusal(t.fromLegacy(503, {}, Buffer.from('<html>down</html>'), req()));
    expect([unmapped.httpStatus, unmapped.code]).toEqual([502, 'TRELLIS_E_LEGACY_FAULT']);
    expect(unmapped.message).not.toContain('down');
    expect(await t.fromLegacy(200, {}, Buffer.from('{"rc":"0","v":7}'), req())).toEqual({
      status: 200,
      body: { v: 7 },
    });
  });

  it('validates the declaration with clear messages', () => {
    const base = { service: 's', legacy: { format: 'json', path: '/' } };
    expect(() => translateSchema.parse(base)).toThrow('needs both toLegacy and fromLegacy');
    expect(() => translateSchema.parse({ ...base, module: './m.mjs', toLegacy: { a: 'b' } })).toThrow(
      'either module or',
    );
    expect(() =>
      translateSchema.parse({ ...base, legacy: { format: 'fixed', path: '/' }, module: 'm' }),
    ).toThrow('needs fixed');
  });

  it('golden folders report a mismatch as a diff', async () => {
    const g = join(dir, 'golden');
    rmSync(g, { recursive: true, force: true });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(g, 'cases'), { recursive: true });
    writeFileSync(
      join(g, 'translation.yaml'),
      'service: s\nlegacy: { format: json, path: /q }\ntoLegacy: { id: $params.id }\nfromLegacy: { qty: { from: q, type: integer } }\n',
    );
    writeFileSync(
      join(g, 'cases', 'one.yaml'),
      'request: { params: { id: "7" } }\nlegacyRequest: { path: /q, body: \'{"id":"7"}\' }\nlegacyResponse: { body: \'{"q":"3"}\' }\nresponse: { status: 200, body: { qty: 4 } }\n',
    );
    const [r] = await runGolden(g);
    expect(r!.ok).toBe(false);
    expect(r!.diffs.join('\n')).toContain('modern response');
    expect(r!.diffs.join('\n')).toMatch(/4.*3|3.*4/s);
  });

  it('recording the first case of a translation makes its cases folder', async () => {
    const g = join(dir, 'first-recording');
    rmSync(g, { recursive: true, force: true });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(g, { recursive: true });
    writeFileSync(
      join(g, 'translation.yaml'),
      'service: s\nlegacy: { format: json, path: /q }\ntoLegacy: { id: $params.id }\nfromLegacy: { qty: { from: q, type: integer } }\n',
    );
    const modern = { method: 'GET', path: '/x/7', params: { id: '7' }, query: {}, headers: {} };
    await recordCase(g, 'one', modern, async () => ({
      status: 200,
      headers: {},
      body: Buffer.from('{"q":"3"}'),
    }));
    const [r] = await runGolden(g);
    expect(r).toMatchObject({ name: 'one', ok: true });
  });
});
