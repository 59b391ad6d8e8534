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
}

/** `gateway.yaml:14:13 routes[2].service: unknown service "catalg" (did you mean "catalog"?)` */
export function formatIssue(issue: ConfigIssue): string {
  const where = `${issue.file}:${issue.line}:${issue.column}`;
  return issue.path ? `${where} ${issue.path}: ${issue.message}` : `${where} ${issue.message}`;
}

export class ConfigError extends TrellisError {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super('TRELLIS_E_CONFIG_INVALID', issues.map(formatIssue).join('\n'), { details: { issues } });
    this.issues = issues;
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
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined) => {
    const pos = lineCounter.linePos(offset ?? 0);
    return { line: pos.line, column: pos.col };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({ file, ...at(e.pos[0]), path: '', message: yamlMessage(e.message) })),
    );
  }
  const issues: ConfigIssue[] = [];
  interpolate(doc, options.env ?? process.env, (node, path, name) =>
    issues.push({
      file,
      ...at(node.range?.[0]),
      path: formatPath(path),
      message: `environment variable ${name} is not set: export it, or write \${${name}:-default}`,
    }),
  );
  if (issues.length > 0) throw new ConfigError(issues);

  const result = schema.safeParse(doc.toJS() ?? {});
  if (result.success) return result.data;
  for (const issue of result.error.issues) {
    const path = issue.path as PropertyKey[];
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
    issues.push({ file, ...at(node?.range?.[0]), path: formatPath(path), message: describe(issue) });
  }
  throw new ConfigError(issues);
}

/** Reads and validates a YAML file (see parseConfig). */
export function loadConfigFile<S extends z.ZodType>(
  file: string,
  schema: S,
  options: LoadOptions = {},
): z.output<S> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TrellisError(
      'TRELLIS_E_CONFIG_UNREADABLE',
      code === 'ENOENT'
        ? `${file}: no such file: check the path (it is relative to ${process.cwd()})`
        : `${file}: cannot read the file (${code ?? String(err)})`,
      { cause: err },
    );
  }
  return parseConfig(text, schema, file, options);
}

function yamlMessage(message: string): string {
  // The yaml library appends "at line X, column Y" plus a code frame; we report position ourselves.
  return `invalid YAML: ${message.split(' at line ')[0]!.split('\n')[0]}`;
}

function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') {
    const expected = issue.expected;
    return issue.message.includes('received undefined')
      ? `is required (expected ${expected})`
      : issue.message;
  }
  if (issue.code === 'invalid_value' && 'values' in issue) {
    const values = issue.values.map((v) => JSON.stringify(v));
    return `must be one of ${values.join(', ')}`;
  }
  return issue.message;
}

function interpolate(
  doc: Document,
  env: Record<string, string | undefined>,
  missing: (node: YamlNode, path: PropertyKey[], name: string) => void,
): void {
  visit(doc, {
    Scalar(_key, node, ancestry) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      node.value = node.value.replace(ENV_RE, (_m, name: string, fallback: string | undefined) => {
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        missing(node, pathOf(ancestry), name);
        return '';
      });
    },
  });
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
          for (const k of Object.keys(shape)) found.add(k);
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
  return [...found];
}
