import { z } from 'zod';
import { formatPath } from '../core/config.js';
import { messageOf, TrellisError } from '../core/errors.js';
import { plaintextSecretPaths } from './secrets.js';

/** One thing wrong with a document: where (`routes[2].path`) and what. */
export interface ValidationIssue {
  path: string;
  message: string;
  /** Line and column in the document's text, when the validator knows them. */
  line?: number;
  column?: number;
}

/**
 * A validator bound to a prefix by name (`trellis config schema set PREFIX --validator gateway`):
 * the checks of the component that will read the document, so the store refuses what that
 * component would refuse, with its own messages.
 */
export interface DocumentValidator {
  /** Every problem in `content`; `name` (the key) stands for the file name in messages. Empty: valid. */
  validate(content: string, name: string): ValidationIssue[];
}

/**
 * Compiles a JSON Schema with zod's own converter (zod 4 `z.fromJSONSchema`), so the project
 * needs no second validator; zod reports exact paths, which is what refusals must show.
 */
export function compileJsonSchema(schema: unknown): z.ZodType {
  if (
    typeof schema !== 'boolean' &&
    (typeof schema !== 'object' || schema === null || Array.isArray(schema))
  ) {
    throw new TrellisError(
      'TRELLIS_E_CONFIG_SCHEMA_INVALID',
      'a JSON Schema must be an object or a boolean',
      {
        status: 400,
      },
    );
  }
  try {
    return z.fromJSONSchema(declareRequired(schema) as Parameters<typeof z.fromJSONSchema>[0]);
  } catch (err) {
    throw new TrellisError(
      'TRELLIS_E_CONFIG_SCHEMA_INVALID',
      `the JSON Schema cannot be used: ${messageOf(err)}`,
      { status: 400, cause: err },
    );
  }
}

const SUBSCHEMA_KEYS = ['items', 'additionalProperties', 'not', 'if', 'then', 'else', 'contains'];
const SUBSCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'];
const SUBSCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'definitions'];

/**
 * A copy of a JSON Schema in which every `required` name also appears in `properties` (as `{}`,
 * which accepts anything). zod's converter only enforces `required` for names listed in
 * `properties`; JSON Schema enforces it regardless, so without this `{required: [path]}` alone
 * would let a document without `path` through.
 */
function declareRequired(schema: unknown): unknown {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return schema;
  const out: Record<string, unknown> = { ...(schema as Record<string, unknown>) };
  for (const k of SUBSCHEMA_KEYS) if (k in out) out[k] = declareRequired(out[k]);
  for (const k of SUBSCHEMA_LISTS) {
    if (Array.isArray(out[k])) out[k] = (out[k] as unknown[]).map(declareRequired);
  }
  for (const k of SUBSCHEMA_MAPS) {
    const m = out[k];
    if (m && typeof m === 'object' && !Array.isArray(m)) {
      out[k] = Object.fromEntries(Object.entries(m).map(([name, sub]) => [name, declareRequired(sub)]));
    }
  }
  if (Array.isArray(out.required) && out.additionalProperties !== false) {
    const props = { ...((out.properties as Record<string, unknown> | undefined) ?? {}) };
    for (const name of out.required) if (typeof name === 'string' && !(name in props)) props[name] = {};
    out.properties = props;
  }
  return out;
}

/** Every issue of `value` against `schema`, plus plain-text values in secret-named fields. */
export function validateDocument(value: unknown, schema: z.ZodType | undefined): ValidationIssue[] {
  const issues: ValidationIssue[] = plaintextSecretPaths(value).map((path) => ({
    path,
    message: 'holds a plain value: store a reference like secret://env/NAME or secret://file/PATH instead',
  }));
  if (schema) {
    const r = schema.safeParse(value);
    if (!r.success) {
      for (const i of r.error.issues) {
        const base = i.path as PropertyKey[];
        if (i.code === 'unrecognized_keys') {
          for (const k of i.keys)
            issues.push({ path: formatPath([...base, k]), message: `unknown field "${k}"` });
        } else {
          issues.push({ path: formatPath(base), message: describeIssue(i, value) });
        }
      }
    }
  }
  return issues;
}

/** zod's text, except that an absent key reads `missing required field "name"`, not "expected nonoptional". */
function describeIssue(issue: z.core.$ZodIssue, value: unknown): string {
  const name = issue.path[issue.path.length - 1];
  let parent = value;
  for (const part of issue.path.slice(0, -1)) {
    parent =
      typeof parent === 'object' && parent !== null
        ? (parent as Record<PropertyKey, unknown>)[part]
        : undefined;
  }
  const absent =
    typeof name === 'string' && typeof parent === 'object' && parent !== null && !(name in parent);
  if (absent) return `missing required field "${name}"`;
  return issue.message.replace(/^Invalid input: /, '');
}

/** The refusal of an invalid document: 422 with every issue, nothing written. */
export function schemaViolation(
  key: string,
  schemaPrefix: string | undefined,
  issues: ValidationIssue[],
  checkedBy?: string,
) {
  const lines = issues
    .map((i) =>
      i.line === undefined
        ? `  ${i.path || '(document)'}: ${i.message}`
        : `  ${key}:${i.line}:${i.column ?? 1}${i.path ? ` ${i.path}` : ''}: ${i.message}`,
    )
    .join('\n');
  const by = schemaPrefix === undefined ? '' : ` (${checkedBy ?? 'schema'} for "${schemaPrefix}")`;
  return new TrellisError(
    'TRELLIS_E_CONFIG_SCHEMA_VIOLATION',
    `${key} was refused${by}, nothing changed; fix:\n${lines}`,
    { status: 422, details: { issues } },
  );
}
