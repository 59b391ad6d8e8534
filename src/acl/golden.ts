import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import * as jsondiffpatch from 'jsondiffpatch';
import * as consoleFormatter from 'jsondiffpatch/formatters/console';
import { parse, stringify } from 'yaml';
import { z } from 'zod';
import { loadConfigFile } from '../core/config.js';
import { TrellisError } from '../core/errors.js';
import { decodeText, encodeText, requireCharset } from './charset.js';
import { type TranslateOptions, translateSchema } from './schema.js';
import { createTranslation, type Translation, TranslationError } from './translation.js';
import type { ModernRequest } from './types.js';

/**
 * Golden tests for translations. A folder holds `translation.yaml` (a `translate:` block, the
 * same keys as in a gateway file) and `cases/*.yaml`, one recorded exchange each: the modern
 * request, the legacy request it must produce, the legacy answer, and the modern answer that
 * answer must become. `trellis acl test DIR` runs every case through the same code the gateway
 * runs and prints a diff for each mismatch; `trellis acl record` makes a case from a real call.
 */

const caseSchema = z.strictObject({
  /** The modern request. */
  request: z.strictObject({
    method: z.string().default('GET'),
    path: z.string().default('/'),
    params: z.record(z.string(), z.string()).default({}),
    query: z.record(z.string(), z.string()).default({}),
    headers: z.record(z.string(), z.string()).default({}),
    body: z.unknown().optional(),
    jwt: z.record(z.string(), z.unknown()).optional(),
  }),
  /** The legacy request it must become (omit to skip the check). */
  legacyRequest: z
    .strictObject({
      method: z.string().optional(),
      path: z.string().optional(),
      headers: z.record(z.string(), z.string()).optional(),
      body: z.string().optional(),
    })
    .optional(),
  /** The legacy system's answer. */
  legacyResponse: z.strictObject({
    status: z.number().int().default(200),
    headers: z.record(z.string(), z.string()).default({}),
    body: z.string(),
  }),
  /** The modern answer expected: a status and a body, or a problem's status, code and members. */
  response: z.strictObject({
    status: z.number().int(),
    body: z.unknown().optional(),
    problem: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type GoldenCase = z.output<typeof caseSchema>;

export interface CaseResult {
  name: string;
  ok: boolean;
  /** Readable differences, one block per mismatching part. */
  diffs: string[];
}

const differ = jsondiffpatch.create({ arrays: { detectMove: true } });

function diffOf(label: string, expected: unknown, actual: unknown): string | undefined {
  const delta = differ.diff(expected, actual);
  if (delta === undefined) return undefined;
  return `${label} (- expected, + actual):\n${consoleFormatter.format(delta, expected)}`;
}

function toModern(r: GoldenCase['request']): ModernRequest {
  return {
    method: r.method,
    path: r.path,
    params: r.params,
    query: r.query,
    headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k.toLowerCase(), v])),
    body: r.body,
    ...(r.jwt === undefined ? {} : { jwt: r.jwt }),
  };
}

/** The modern answer a translation gives for a legacy answer, as a case records it. */
export async function answerOf(
  t: Translation,
  legacy: GoldenCase['legacyResponse'],
  request: ModernRequest,
): Promise<GoldenCase['response']> {
  try {
    const bytes = encodeText(legacy.body, requireCharset(t.options.legacy.charset));
    const answer = await t.fromLegacy(legacy.status, legacy.headers, bytes, request);
    return { status: answer.status, body: JSON.parse(JSON.stringify(answer.body ?? null)) };
  } catch (err) {
    if (err instanceof TranslationError) {
      return { status: err.httpStatus, problem: { code: err.code, ...err.extensions } };
    }
    throw err;
  }
}

/** Comparable form of a legacy body: the decoded tree for XML/SOAP/JSON, the text otherwise. */
function comparable(t: Translation, text: string): unknown {
  if (t.codec.format === 'csv' || t.codec.format === 'fixed') return text.replace(/\r\n/g, '\n');
  try {
    return t.codec.decode(encodeText(text, requireCharset(t.options.legacy.charset)));
  } catch (err) {
    return `(unreadable: ${(err as Error).message}) ${text}`;
  }
}

async function runCase(t: Translation, name: string, c: GoldenCase): Promise<CaseResult> {
  const diffs: string[] = [];
  const request = toModern(c.request);
  if (c.legacyRequest !== undefined) {
    try {
      const legacy = await t.toLegacy(request);
      const want = c.legacyRequest;
      if (want.method !== undefined && want.method !== legacy.method)
        diffs.push(`legacy method: expected ${want.method}, got ${legacy.method}`);
      if (want.path !== undefined && want.path !== legacy.path)
        diffs.push(`legacy path: expected ${want.path}, got ${legacy.path}`);
      for (const [k, v] of Object.entries(want.headers ?? {})) {
        if (legacy.headers[k.toLowerCase()] !== v)
          diffs.push(`legacy header ${k}: expected ${v}, got ${legacy.headers[k.toLowerCase()]}`);
      }
      if (want.body !== undefined) {
        const got =
          legacy.body === undefined ? '' : decodeText(legacy.body, requireCharset(t.options.legacy.charset));
        const d = diffOf('legacy request body', comparable(t, want.body), comparable(t, got));
        if (d) diffs.push(d);
      }
    } catch (err) {
      const e = err as TranslationError;
      diffs.push(`the legacy request could not be built: ${e.code ?? ''} ${e.message}`);
    }
  }
  const got = await answerOf(t, c.legacyResponse, request);
  const expected: Record<string, unknown> = { status: c.response.status };
  const actual: Record<string, unknown> = { status: got.status };
  if (c.response.problem !== undefined) {
    expected.problem = c.response.problem;
    actual.problem =
      got.problem === undefined ? undefined : pick(got.problem, Object.keys(c.response.problem));
  } else {
    expected.body = c.response.body;
    actual.body = got.body ?? got.problem;
  }
  const d = diffOf('modern response', expected, actual);
  if (d) diffs.push(d);
  return { name, ok: diffs.length === 0, diffs };
}

function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, o[k]]));
}

/** Loads `DIR/translation.yaml` and compiles it. */
export async function loadTranslation(dir: string): Promise<Translation> {
  const file = join(dir, 'translation.yaml');
  const options = loadConfigFile(file, translateSchema) as TranslateOptions;
  return createTranslation(options, { baseDir: dirname(resolve(file)) });
}

function readCase(file: string): GoldenCase {
  const r = caseSchema.safeParse(parse(readFileSync(file, 'utf8')));
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join('.') || '(case)'}: ${i.message}`);
    throw new TrellisError(
      'TRELLIS_E_ACL_CASE_INVALID',
      `${file} is not a golden case:\n${lines.join('\n')}`,
    );
  }
  return r.data;
}

/** Runs every case of a golden folder (optionally only those whose name contains `filter`). */
export async function runGolden(dir: string, filter?: string): Promise<CaseResult[]> {
  const t = await loadTranslation(dir);
  const casesDir = join(dir, 'cases');
  let files: string[];
  try {
    files = readdirSync(casesDir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'));
  } catch {
    throw new TrellisError(
      'TRELLIS_E_ACL_CASE_INVALID',
      `${casesDir} does not exist: put one YAML file per recorded exchange there`,
    );
  }
  const out: CaseResult[] = [];
  for (const f of files.sort()) {
    const name = basename(f).replace(/\.ya?ml$/, '');
    if (filter !== undefined && !name.includes(filter)) continue;
    out.push(await runCase(t, name, readCase(join(casesDir, f))));
  }
  return out;
}

const SECRET_HEADERS = new Set(['authorization', 'cookie', 'set-cookie', 'proxy-authorization', 'x-api-key']);

/** Replaces the values of named fields (anywhere in a tree) with `[redacted]`. */
export function redact(value: unknown, fields: ReadonlySet<string>): unknown {
  if (Array.isArray(value)) return value.map((v) => redact(v, fields));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, fields.has(k) ? '[redacted]' : redact(v, fields)]),
  );
}

function redactXmlText(text: string, fields: ReadonlySet<string>): string {
  let out = text;
  for (const f of fields) {
    const name = f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    out = out.replace(new RegExp(`(<(?:[\\w-]+:)?${name}(?:\\s[^>]*)?>)[^<]*(</)`, 'g'), '$1[redacted]$2');
  }
  return out;
}

function redactHeaders(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(h).map(([k, v]) => [k, SECRET_HEADERS.has(k.toLowerCase()) ? '[redacted]' : v]),
  );
}

/** What `trellis acl record` sends, so tests can replace the network. */
export type LegacySender = (req: {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
}) => Promise<{ status: number; headers: Record<string, string>; body: Buffer }>;

/**
 * Records one real exchange as a case: builds the legacy request from the modern one, sends it,
 * and writes the legacy answer with the modern answer the translation gives today (to review).
 * Values of the translation's `redact:` fields and credential headers are replaced.
 */
export async function recordCase(
  dir: string,
  name: string,
  modern: GoldenCase['request'],
  send: LegacySender,
): Promise<string> {
  const t = await loadTranslation(dir);
  const request = toModern(modern);
  const legacy = await t.toLegacy(request);
  const answer = await send({
    method: legacy.method,
    path: legacy.path,
    headers: legacy.headers,
    body: legacy.body,
  });
  const fields = new Set(t.options.redact);
  const charset = requireCharset(t.options.legacy.charset);
  const text = decodeText(answer.body, charset);
  const response = await answerOf(t, { status: answer.status, headers: answer.headers, body: text }, request);
  const isXml = t.codec.format === 'xml' || t.codec.format.startsWith('soap');
  const redactText = (s: string) =>
    isXml
      ? redactXmlText(s, fields)
      : t.codec.format === 'json'
        ? JSON.stringify(redact(JSON.parse(s), fields))
        : s;
  const c: GoldenCase = {
    request: { ...modern, headers: redactHeaders(modern.headers), body: redact(modern.body, fields) },
    legacyRequest: {
      method: legacy.method,
      path: legacy.path,
      ...(legacy.body === undefined ? {} : { body: redactText(decodeText(legacy.body, charset)) }),
    },
    legacyResponse: { status: answer.status, headers: {}, body: redactText(text) },
    response: {
      ...response,
      ...(response.body === undefined ? {} : { body: redact(response.body, fields) }),
    },
  };
  // The first recording of a new translation makes its cases folder.
  mkdirSync(join(dir, 'cases'), { recursive: true });
  const file = join(dir, 'cases', `${name}.yaml`);
  writeFileSync(
    file,
    `# recorded ${new Date().toISOString()}: review the response before committing\n${stringify(c, { lineWidth: 0 })}`,
  );
  return file;
}
