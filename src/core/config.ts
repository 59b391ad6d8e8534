import { readFileSync } from 'node:fs';
import {
  type Document,
  isMap,
  isScalar,
  LineCounter,
  parseDocument,
  visit,
  type Node as YamlNode,
} from 'yaml';
import type { z } from 'zod';
import { TrellisError } from './errors.js';
import { didYouMean } from './suggest.js';

/** One problem found in a configuration file, with where it is. */
export interface ConfigIssue {
  file: string;
  line: number;
  column: number;
  /** Path inside the document, like `routes[2].service`. */
  path: string;
  message: string;
  /** The offending source line with a caret under the column (YAML syntax errors). */
  excerpt?: string;
}

/** `gateway.yaml:14:13 routes[2].service: unknown service "catalg" (did you mean "catalog"?)` */
export function formatIssue(issue: ConfigIssue): string {
  const where = `${issue.file}:${issue.line}:${issue.column}`;
  const line = issue.path ? `${where} ${issue.path}: ${issue.message}` : `${where} ${issue.message}`;
  return issue.excerpt ? `${line}\n${issue.excerpt}` : line;
}

/** Issues in reading order (line, then column), so the first one printed is the first in the file. */
export function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column);
}

export class ConfigError extends TrellisError {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    const sorted = sortIssues(issues);
    super('TRELLIS_E_CONFIG_INVALID', sorted.map(formatIssue).join('\n'), { details: { issues: sorted } });
    this.issues = sorted;
  }
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

const ENV_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export interface LoadOptions {
  /** Environment for `${NAME}` / `${NAME:-default}` interpolation; defaults to process.env. */
  env?: Record<string, string | undefined>;
  /**
   * `refuse` (default): a `${NAME}` that is not set and has no default is an error. `ignore`:
   * for checking a document elsewhere than where it runs (a configuration store), where the
   * environment is not the reader's: such values and what depends on them are not judged (when
   * only those were wrong, the result is the document as parsed, without the schema's defaults).
   */
  unsetVariables?: 'refuse' | 'ignore';
}

/**
 * Parses YAML text and validates it with a zod schema. Every problem (YAML syntax, a missing
 * environment variable, a schema violation) becomes a ConfigIssue with file, line, column, path
 * and a hint, and all of them are thrown together as one ConfigError.
 */
export function parseConfig<S extends z.ZodType>(
  text: string,
  schema: S,
  file = '<inline>',
  options: LoadOptions = {},
): z.output<S> {
  const { doc, at, templates } = parseYaml(text, file);
  const issues: ConfigIssue[] = [];
  const unknown = new Set<string>();
  const interpolated = interpolate(doc, templates, options.env ?? process.env, (node, path, name) => {
    if (options.unsetVariables === 'ignore') {
      unknown.add(formatPath(path));
      return;
    }
    issues.push({
      file,
      ...at(node.range?.[0]),
      path: formatPath(path),
      message: `environment variable ${name} is not set: export it, or write \${${name}:-default}`,
    });
  });
  const judged = (path: PropertyKey[]) => !unknown.has(formatPath(path));
  if (issues.length > 0) throw new ConfigError(issues);

  let data: unknown;
  try {
    data = doc.toJS() ?? {};
  } catch (err) {
    // yaml refuses documents whose aliases expand past maxAliasCount (a "billion laughs" bomb).
    throw new ConfigError([
      {
        file,
        line: 1,
        column: 1,
        path: '',
        message: `refused: ${(err as Error).message.replace(/ indicates.*/, '')} (the aliases expand too much; write the values out)`,
      },
    ]);
  }
  let result = schema.safeParse(data);
  // `${PORT}` interpolates to text; a field that wants a number or a boolean gets it converted
  // (only where a variable was interpolated: a literal "8080" in quotes stays a mistake).
  for (let pass = 0; !result.success && pass < 4; pass++) {
    const coerced = coerceInterpolated(result.error.issues, data, interpolated, (path, message) => {
      if (!judged(path)) return;
      const node = nearestNode(doc, path);
      issues.push({ file, ...at(node?.range?.[0]), path: formatPath(path), message });
    });
    if (issues.length > 0) throw new ConfigError(issues);
    if (!coerced) break;
    result = schema.safeParse(data);
  }
  if (result.success) return result.data;
  for (const issue of result.error.issues) {
    const path = issue.path as PropertyKey[];
    if (!judged(path)) continue;
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(schema, path);
      for (const key of issue.keys) {
        const node = keyNode(doc, path, key);
        issues.push({
          file,
          ...at(node?.range?.[0]),
          path: formatPath([...path, key]),
          message: `unknown option "${key}"${didYouMean(key, known)}`,
        });
      }
      continue;
    }
    const node = nearestNode(doc, path);
    let message =
      describe(issue, data) + (issue.code === 'invalid_type' ? siblingHint(schema, path, data) : '');
    const also = (issue as { params?: { also?: PropertyKey[] } }).params?.also;
    if (also) {
      const other = exactNode(doc, also);
      if (other) message += ` (${formatPath(also)} is at line ${at(other.range?.[0]).line})`;
    }
    issues.push({ file, ...at(node?.range?.[0]), path: formatPath(path), message });
  }
  // Everything left was about values nobody here can know (`unsetVariables: 'ignore'`).
  if (issues.length === 0) return data as z.output<S>;
  throw new ConfigError(issues);
}

/** Parses YAML, throwing a ConfigError with the first syntax error (line, column and a caret). */
function parseYaml(text: string, file: string) {
  const lineCounter = new LineCounter();
  const { shielded, templates } = shield(text);
  const doc = parseDocument(shielded, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined) => {
    const pos = lineCounter.linePos(offset ?? 0);
    return { line: pos.line, column: pos.col };
  };
  const first = doc.errors[0];
  if (first) {
    // One error: after the first, the parser is out of step and the rest are mostly echoes of it.
    const pos = at(first.pos[0]);
    throw new ConfigError([
      { file, ...pos, path: '', message: yamlMessage(first.message), excerpt: caret(text, pos) },
    ]);
  }
  return { doc, at, templates };
}

// `${NAME}` is not plain YAML inside a flow mapping (`{ port: ${PORT} }`: the brace opens a
// map), so each one is replaced before parsing by a run of private-use characters of the same
// length (positions stay exact) and put back into the scalar it landed in.
const PAD = '\uE000';
const FIRST_MARK = 0xe100;
const LAST_MARK = 0xf8ff;
const MARK_RE = /\uE000*([\uE100-\uF8FF])/g;

/** `text` with each `${NAME}` replaced by same-length marks that YAML parses anywhere (see unshield). */
export function shield(text: string): { shielded: string; templates: string[] } {
  const templates: string[] = [];
  const shielded = text.replace(ENV_RE, (m) => {
    if (FIRST_MARK + templates.length > LAST_MARK) return m;
    templates.push(m);
    return PAD.repeat(m.length - 1) + String.fromCharCode(FIRST_MARK + templates.length - 1);
  });
  return { shielded, templates };
}

/** Puts the `${NAME}` texts that shield() replaced back into a parsed string. */
export function unshield(value: string, templates: readonly string[]): string {
  return value.replace(MARK_RE, (m, mark: string) => templates[mark.charCodeAt(0) - FIRST_MARK] ?? m);
}

/** The line `line` of `text` and a caret under `column`, like a compiler shows. */
function caret(text: string, pos: { line: number; column: number }): string {
  const source = (text.split(/\r?\n/)[pos.line - 1] ?? '').replace(/\t/g, ' ');
  const gutter = String(pos.line);
  return `  ${gutter} | ${source}\n  ${' '.repeat(gutter.length)} | ${' '.repeat(Math.max(0, pos.column - 1))}^`;
}

/**
 * A ConfigIssue for `path` inside YAML `text` (its line and column, or its nearest parent's), for
 * checks made after parsing, such as files a configuration refers to.
 */
export function configIssueAt(
  text: string,
  file: string,
  path: ReadonlyArray<PropertyKey>,
  message: string,
): ConfigIssue {
  const { doc, at } = parseYaml(text, file);
  const node = nearestNode(doc, [...path]);
  return { file, ...at(node?.range?.[0]), path: formatPath(path), message };
}

/** Reads and validates a YAML file (see parseConfig). */
export function loadConfigFile<S extends z.ZodType>(
  file: string,
  schema: S,
  options: LoadOptions = {},
): z.output<S> {
  return parseConfig(readConfigText(file), schema, file, options);
}

/** A configuration file's text; a missing or unreadable file is TRELLIS_E_CONFIG_UNREADABLE saying which and why. */
export function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TrellisError(
      'TRELLIS_E_CONFIG_UNREADABLE',
      code === 'ENOENT'
        ? `${file}: no such file: check the path (it is relative to ${process.cwd()})`
        : code === 'EISDIR'
          ? `${file}: is a folder: name the configuration file inside it`
          : code === 'EACCES'
            ? `${file}: cannot read the file: check its permissions`
            : `${file}: cannot read the file (${code ?? String(err)})`,
      { cause: err },
    );
  }
}

function yamlMessage(message: string): string {
  // The yaml library appends "at line X, column Y" plus a code frame; we report position ourselves.
  return `invalid YAML: ${message.split(' at line ')[0]!.split('\n')[0]}`;
}

function describe(issue: z.core.$ZodIssue, data: unknown): string {
  const path = issue.path as PropertyKey[];
  const name = path[path.length - 1];
  if (typeof name === 'string' && isMissing(data, path)) {
    const expected =
      issue.code === 'invalid_type' && issue.expected !== 'nonoptional'
        ? ` (expected ${issue.expected})`
        : '';
    return `missing required field "${name}"${expected}`;
  }
  if (issue.code === 'invalid_type') {
    return issue.message.replace(/^Invalid input: /, '');
  }
  if (issue.code === 'invalid_value' && 'values' in issue) {
    const values = issue.values.map((v) => JSON.stringify(v));
    return `must be one of ${values.join(', ')}`;
  }
  return issue.message;
}

/** True when the object at `path`'s parent exists and has no `path`'s key at all. */
function isMissing(data: unknown, path: PropertyKey[]): boolean {
  const parent = valueAt(data, path.slice(0, -1));
  return typeof parent === 'object' && parent !== null && !(String(path[path.length - 1]) in parent);
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data;
  for (const part of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[part];
  }
  return v;
}

/**
 * ` (did you mean "jwksUrl"?)` when a value of the wrong type sits under a key whose sibling
 * (a longer name starting the same way) accepts it: `jwks: https://…`.
 */
function siblingHint(schema: unknown, path: PropertyKey[], data: unknown): string {
  const key = path[path.length - 1];
  if (typeof key !== 'string') return '';
  const value = valueAt(data, path);
  if (value === undefined) return '';
  const parent = path.slice(0, -1);
  const lower = key.toLowerCase();
  const fits: string[] = [];
  for (const object of objectsAt(schema, parent)) {
    const shape = defOf(object)!.shape as Record<string, z.ZodType>;
    for (const [name, field] of Object.entries(shape)) {
      if (name === key || fits.includes(name)) continue;
      const l = name.toLowerCase();
      // Only a name that extends this one (`jwks` -> `jwksUrl`): a mere typo away (`port`, `host`)
      // is a different option, and suggesting it for a wrong value would mislead.
      if (lower.length < 3 || !l.startsWith(lower)) continue;
      if (field.safeParse(value).success) fits.push(name);
    }
  }
  if (fits.length === 0) return '';
  // Several siblings take a string: let the value's shape choose (a URL goes to the *Url one).
  const text = typeof value === 'string' ? value : '';
  const shaped = /^[a-z][a-z0-9+.-]*:\/\//i.test(text)
    ? fits.find((n) => /ur[li]/i.test(n))
    : /^[./~]/.test(text)
      ? fits.find((n) => /file|path|dir|root/i.test(n))
      : undefined;
  return ` (did you mean "${shaped ?? fits[0]}"?)`;
}

/**
 * Where a field that wants a number or a boolean received the text of an interpolated
 * `${NAME}`, converts it in `data` (true when anything changed); a text that is no number calls
 * `refuse` with the reason.
 */
function coerceInterpolated(
  issues: readonly z.core.$ZodIssue[],
  data: unknown,
  interpolated: ReadonlyMap<string, string>,
  refuse: (path: PropertyKey[], message: string) => void,
): boolean {
  let changed = false;
  for (const issue of issues) {
    const candidates =
      issue.code === 'invalid_union'
        ? issue.errors.flat().map((i) => ({ ...i, path: [...issue.path, ...i.path] }))
        : [issue];
    for (const i of candidates) {
      if (i.code !== 'invalid_type' || (i.expected !== 'number' && i.expected !== 'boolean')) continue;
      const path = i.path as PropertyKey[];
      const template = interpolated.get(formatPath(path));
      const raw = valueAt(data, path);
      if (template === undefined || typeof raw !== 'string') continue;
      const parent = valueAt(data, path.slice(0, -1)) as Record<PropertyKey, unknown>;
      const last = path[path.length - 1]!;
      if (i.expected === 'number') {
        const n = raw.trim() === '' ? Number.NaN : Number(raw);
        if (Number.isFinite(n)) {
          parent[last] = n;
          changed = true;
        } else if (issue.code !== 'invalid_union') {
          refuse(
            path,
            `${template} is ${JSON.stringify(raw)}, which is not a number: set it to a number like 8080`,
          );
        }
      } else if (raw === 'true' || raw === 'false') {
        parent[last] = raw === 'true';
        changed = true;
      } else if (issue.code !== 'invalid_union') {
        refuse(path, `${template} is ${JSON.stringify(raw)}: write true or false`);
      }
    }
  }
  return changed;
}

function interpolate(
  doc: Document,
  templates: readonly string[],
  env: Record<string, string | undefined>,
  missing: (node: YamlNode, path: PropertyKey[], name: string) => void,
): Map<string, string> {
  // Path -> the text as written, for values that came from the environment.
  const interpolated = new Map<string, string>();
  visit(doc, {
    Scalar(_key, node, ancestry) {
      if (typeof node.value !== 'string') return;
      const written = templates.length > 0 ? unshield(node.value, templates) : node.value;
      node.value = written;
      if (!written.includes('${')) return;
      interpolated.set(formatPath(pathOf(ancestry)), written);
      node.value = written.replace(ENV_RE, (_m, name: string, fallback: string | undefined) => {
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        missing(node, pathOf(ancestry), name);
        return '';
      });
    },
  });
  return interpolated;
}

function pathOf(ancestry: readonly unknown[]): PropertyKey[] {
  const path: PropertyKey[] = [];
  for (let i = 0; i < ancestry.length; i++) {
    const a = ancestry[i] as { items?: unknown[]; key?: unknown };
    const next = ancestry[i + 1];
    if (a && Array.isArray(a.items) && next !== undefined) {
      const idx = a.items.indexOf(next);
      if (!isMap(a) && idx >= 0) path.push(idx);
    } else if (a && 'key' in a && isScalar(a.key)) {
      path.push(String(a.key.value));
    }
  }
  return path;
}

function nearestNode(doc: Document, path: PropertyKey[]): YamlNode | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as YamlNode | undefined;
    if (node && typeof node === 'object' && 'range' in node) {
      // A missing key points at its parent map; an existing one at its value.
      return node;
    }
  }
  return doc.contents ?? undefined;
}

/** The node at exactly `path`, or undefined when the file does not write it. */
function exactNode(doc: Document, path: PropertyKey[]): YamlNode | undefined {
  const node = doc.getIn(path, true) as YamlNode | undefined;
  return node && typeof node === 'object' && 'range' in node ? node : undefined;
}

function keyNode(doc: Document, path: PropertyKey[], key: string): YamlNode | undefined {
  const parent = doc.getIn(path, true);
  if (isMap(parent)) {
    for (const pair of parent.items) {
      if (isScalar(pair.key) && String(pair.key.value) === key) return pair.key;
    }
  }
  return nearestNode(doc, path);
}

type AnyDef = { type: string; [k: string]: unknown };
const defOf = (schema: unknown): AnyDef | undefined => (schema as { _zod?: { def?: AnyDef } })?._zod?.def;

/** The keys a zod object schema accepts at `path`, for "did you mean" on unknown keys. */
export function knownKeys(schema: unknown, path: PropertyKey[]): string[] {
  const found = new Set<string>();
  for (const object of objectsAt(schema, path)) {
    for (const k of Object.keys(defOf(object)!.shape as Record<string, unknown>)) found.add(k);
  }
  return [...found];
}

/** The zod object schemas that can describe the value at `path` (several under a union). */
function objectsAt(schema: unknown, path: PropertyKey[]): unknown[] {
  const found: unknown[] = [];
  const walk = (s: unknown, rest: PropertyKey[]): void => {
    const def = defOf(s);
    if (!def) return;
    switch (def.type) {
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'readonly':
      case 'catch':
      case 'nonoptional':
        walk(def.innerType, rest);
        return;
      case 'pipe':
        walk(def.in, rest);
        return;
      case 'lazy':
        walk((def.getter as () => unknown)(), rest);
        return;
      case 'union':
        for (const o of def.options as unknown[]) walk(o, rest);
        return;
      case 'intersection':
        walk(def.left, rest);
        walk(def.right, rest);
        return;
      case 'object': {
        const shape = def.shape as Record<string, unknown>;
        if (rest.length === 0) {
          found.push(s);
          return;
        }
        const [head, ...tail] = rest;
        if (typeof head === 'string' && head in shape) walk(shape[head], tail);
        return;
      }
      case 'array':
        if (rest.length > 0) walk(def.element, rest.slice(1));
        return;
      case 'record':
        if (rest.length > 0) walk(def.valueType, rest.slice(1));
        return;
    }
  };
  walk(schema, path);
  return found;
}
