import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { recordCase, runGolden } from '../../acl/golden.js';
import { messageOf, TrellisError } from '../../core/errors.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';

const usage = `usage: trellis acl test DIR [--only NAME]
       trellis acl record DIR --legacy URL --name NAME [--request FILE.json]

Golden tests for an anti-corruption layer. DIR holds translation.yaml (a translate: block, the
same keys as in a gateway route) and cases/*.yaml, one recorded exchange each.

  test     runs every case through the translation (offline, the same code the gateway runs)
           and prints a diff for each mismatch; exits 1 when one fails.
  record   sends the modern request of FILE (JSON: { method, params, query, headers, body },
           default {}) through the translation to the real legacy system at URL and writes
           cases/NAME.yaml with what it answered; credentials and the translation's redact:
           fields are replaced by [redacted]. Review the recorded response before committing.`;

async function test(argv: string[]): Promise<number> {
  const { positionals, values } = parseCommandArgs(argv, { only: { type: 'string' } });
  const dir = positionals[0];
  if (dir === undefined) throw usageError('name the golden folder: trellis acl test DIR');
  const results = await runGolden(dir, values.only);
  if (results.length === 0) {
    process.stderr.write(`${dir}: no cases${values.only ? ` matching "${values.only}"` : ''} under cases/\n`);
    return 1;
  }
  let failed = 0;
  for (const r of results) {
    if (r.ok) {
      process.stdout.write(`ok    ${r.name}\n`);
      continue;
    }
    failed++;
    process.stdout.write(
      `FAIL  ${r.name}\n${r.diffs.map((d) => `  ${d.replaceAll('\n', '\n  ')}`).join('\n')}\n`,
    );
  }
  process.stdout.write(`\n${results.length - failed} passed, ${failed} failed\n`);
  return failed === 0 ? 0 : 1;
}

async function record(argv: string[]): Promise<number> {
  const { positionals, values } = parseCommandArgs(argv, {
    legacy: { type: 'string' },
    name: { type: 'string' },
    request: { type: 'string' },
  });
  const dir = positionals[0];
  if (dir === undefined)
    throw usageError('name the golden folder: trellis acl record DIR --legacy URL --name NAME');
  if (values.legacy === undefined)
    throw usageError('--legacy URL: where the legacy system answers (http://host:port)');
  if (values.name === undefined || !/^[\w.-]+$/.test(values.name)) {
    throw usageError('--name NAME: the case name (letters, digits, . _ -)');
  }
  let base: URL;
  try {
    base = new URL(values.legacy);
  } catch {
    throw usageError(`--legacy ${values.legacy} is not a URL: write http://host:port`);
  }
  let modern: Record<string, unknown> = {};
  if (values.request !== undefined) {
    try {
      modern = JSON.parse(readFileSync(values.request, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new TrellisError(
        'TRELLIS_E_ACL_CASE_INVALID',
        `${values.request}: not a JSON request (${messageOf(err)})`,
      );
    }
  }
  const file = await recordCase(
    dir,
    values.name,
    {
      method: 'GET',
      path: '/',
      params: {},
      query: {},
      headers: {},
      ...modern,
    } as Parameters<typeof recordCase>[2],
    async (call) => {
      const res = await request(new URL(call.path, base), {
        method: call.method as 'POST',
        headers: call.headers,
        body: call.body ?? null,
      });
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
      return { status: res.statusCode, headers, body: Buffer.from(await res.body.arrayBuffer()) };
    },
  );
  process.stdout.write(`recorded ${file}: review its response, then commit it\n`);
  return 0;
}

async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'test') return test(rest);
  if (sub === 'record') return record(rest);
  throw usageError(
    sub === undefined
      ? 'name a subcommand: test or record'
      : `unknown subcommand "${sub}": use test or record`,
  );
}

export const aclCommand: Command = {
  name: 'acl',
  summary: 'golden tests for anti-corruption layers (test, record)',
  usage,
  run,
};
