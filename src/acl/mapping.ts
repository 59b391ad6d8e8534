import { z } from 'zod';
import { getPath, type Path, parsePath, setPath } from '../shape/paths.js';
import {
  type Coercion,
  CoercionError,
  coercionSchema,
  compileCoercion,
  type Direction,
  describe,
} from './coerce.js';
import { type CompiledExpression, compileExpression, type ExpressionLimits } from './expression.js';

/**
 * Declarative field mappings: `target.path: rule`, applied in the order written. A rule reads
 * a value (`from` a path, a `const`, a JSONata `expr`, or a list with `each` + `map`), then
 * optionally looks it up in a code table and coerces its type. Plain paths read the other
 * side's body (for `toLegacy` the modern request body, for `fromLegacy` the decoded legacy
 * answer, inside `each` the list element); `$`-names read the context: `$params`, `$query`,
 * `$headers`, `$jwt`, `$method` going to the legacy side, `$status`, `$headers`, `$request`
 * coming back.
 *
 * ```yaml
 * fromLegacy:
 *   sku: Sku
 *   quantity: { from: QtyOnHand, type: integer }
 *   restockOn: { from: NextDelivery, type: date, format: YYYYMMDD }
 *   status: { from: StatusCode, lookup: status, default: unknown }
 *   bins: { each: Bins.Bin, map: { id: BinId, count: { from: Qty, type: integer } } }
 * ```
 */

const coercionFields = coercionSchema.shape;

export type RuleInput = string | RuleObject;
export interface RuleObject {
  from?: string | undefined;
  const?: unknown;
  expr?: string | undefined;
  each?: string | undefined;
  map?: Record<string, RuleInput> | undefined;
  lookup?: string | undefined;
  default?: unknown;
  required?: boolean | undefined;
  type?: z.output<typeof coercionFields.type> | undefined;
  [option: string]: unknown;
}

export const ruleSchema: z.ZodType<RuleInput> = z.lazy(() =>
  z.union([
    z.string().min(1),
    z
      .strictObject({
        from: z.string().min(1).optional(),
        const: z.unknown().optional(),
        expr: z.string().min(1).optional(),
        each: z.string().min(1).optional(),
        map: z.record(z.string(), ruleSchema).optional(),
        lookup: z.string().min(1).optional(),
        default: z.unknown().optional(),
        required: z.boolean().optional(),
        type: coercionFields.type.optional(),
        format: coercionFields.format,
        offset: coercionFields.offset,
        decimalSeparator: coercionFields.decimalSeparator,
        scale: coercionFields.scale,
        implied: coercionFields.implied,
        true: coercionFields.true,
        false: coercionFields.false,
        trim: coercionFields.trim,
      })
      .superRefine((r, ctx) => {
        const sources = (['from', 'const', 'expr', 'each'] as const).filter((k) => r[k] !== undefined);
        if (sources.length !== 1) {
          ctx.addIssue({
            code: 'custom',
            message:
              sources.length === 0
                ? 'a rule needs one of from, const, expr or each'
                : `a rule takes one of from, const, expr or each, not ${sources.join(' and ')}`,
          });
        }
        if ((r.each === undefined) !== (r.map === undefined)) {
          ctx.addIssue({
            code: 'custom',
            message: 'each and map go together: each: LIST.PATH, map: { field: rule }',
          });
        }
      }),
  ]),
);

/** A mapping as written: target path -> rule. */
export const mappingSchema = z.record(z.string(), ruleSchema);
export type MappingInput = z.output<typeof mappingSchema>;

/** Code tables: name -> { legacy code: modern value }. */
export const tablesSchema = z.record(z.string(), z.record(z.string(), z.unknown()));

/** A value a rule could not produce, with the target path and the source path it read. */
export class MappingError extends Error {
  override readonly name = 'MappingError';
  constructor(
    /** Where in the output (`bins[2].count`). */
    readonly target: string,
    /** What was read (`Bins.Bin[2].Qty`), when a path was read. */
    readonly source: string | undefined,
    message: string,
  ) {
    super(`${target}${source === undefined ? '' : ` (from ${source})`}: ${message}`);
  }
}

/** The context a mapping reads besides the body. */
export type MappingContext = Readonly<Record<string, unknown>>;

/** A compiled mapping: builds the other side's body. */
export type Mapping = (body: unknown, context: MappingContext) => Promise<Record<string, unknown>>;

interface CompiledRule {
  target: Path;
  targetText: string;
  read: (element: unknown, context: MappingContext, at: string) => Promise<unknown>;
}

export interface MappingOptions {
  direction: Direction;
  tables: Record<string, Record<string, unknown>>;
  limits: ExpressionLimits;
}

function mustPath(text: string, where: string): Path {
  const p = parsePath(text);
  if (typeof p === 'string') throw new Error(`${where}: ${p}`);
  return p;
}

/** Reads a `$name...` path from the context, or a plain path from the element. */
function reader(text: string, where: string): (element: unknown, context: MappingContext) => unknown {
  const path = mustPath(text, where);
  const head = path[0];
  if (head !== undefined && 'key' in head && head.key.startsWith('$')) {
    const name = head.key.slice(1);
    const rest = path.slice(1);
    return (_el, ctx) => (rest.length === 0 ? ctx[name] : getPath(ctx[name], rest));
  }
  return (el) => getPath(el, path);
}

function isMissing(v: unknown, coerce: Coercion | undefined, type: string | undefined): boolean {
  if (v === undefined || v === null) return true;
  // An empty XML element or a blank fixed-width field means "no value" for anything but text.
  return v === '' && coerce !== undefined && type !== 'string';
}

function tableFor(name: string, o: MappingOptions, where: string): Map<string, unknown> {
  const table = o.tables[name];
  if (table === undefined) {
    const known = Object.keys(o.tables);
    throw new Error(
      `${where}: unknown code table "${name}"${known.length ? ` (tables: ${known.join(', ')})` : ''}`,
    );
  }
  if (o.direction === 'fromLegacy') return new Map(Object.entries(table));
  // Going to the legacy side the table is read backwards: modern value -> legacy code.
  const inverse = new Map<string, unknown>();
  for (const [code, value] of Object.entries(table)) {
    const key = JSON.stringify(value);
    if (inverse.has(key))
      throw new Error(`${where}: table "${name}" maps two codes to ${key}, so it cannot be read backwards`);
    inverse.set(key, code);
  }
  return inverse;
}

function compileRule(targetText: string, input: RuleInput, o: MappingOptions): CompiledRule {
  const where = `mapping "${targetText}"`;
  const target = mustPath(targetText, where);
  const rule: RuleObject = typeof input === 'string' ? { from: input } : input;
  const coerce =
    rule.type === undefined
      ? undefined
      : compileCoercion(rule as z.output<typeof coercionSchema>, o.direction);
  const table = rule.lookup === undefined ? undefined : tableFor(rule.lookup, o, where);
  const hasDefault = Object.hasOwn(rule, 'default') && rule.default !== undefined;
  const finish = (value: unknown, at: string, sourceText: string | undefined): unknown => {
    if (isMissing(value, coerce, rule.type)) {
      if (hasDefault) return rule.default;
      if (rule.required) throw new MappingError(at, sourceText, 'is required but missing');
      return undefined;
    }
    let v = value;
    if (table !== undefined) {
      const key = o.direction === 'fromLegacy' ? String(v).trim() : JSON.stringify(v);
      if (!table.has(key)) {
        if (hasDefault) return rule.default;
        throw new MappingError(at, sourceText, `${describe(v)} is not in the code table "${rule.lookup}"`);
      }
      v = table.get(key);
    }
    if (coerce !== undefined) {
      try {
        v = coerce(v);
      } catch (err) {
        if (err instanceof CoercionError) throw new MappingError(at, sourceText, err.message);
        throw err;
      }
    }
    return v;
  };

  if (rule.const !== undefined) {
    const value = rule.const;
    return { target, targetText, read: async () => value };
  }
  if (rule.expr !== undefined) {
    let expr: CompiledExpression;
    try {
      expr = compileExpression(rule.expr, o.limits);
    } catch (err) {
      throw new Error(`${where}: ${(err as Error).message}`);
    }
    return {
      target,
      targetText,
      read: async (el, ctx, at) => finish(await expr.evaluate(el, bindingsOf(ctx)), at, undefined),
    };
  }
  if (rule.each !== undefined) {
    const list = reader(rule.each, where);
    const inner = compileMappingRules(rule.map!, o);
    return {
      target,
      targetText,
      read: async (el, ctx, at) => {
        const items = list(el, ctx);
        // An empty XML element (`<Bins/>`) is an empty list.
        if (items === undefined || items === null || items === '') {
          if (rule.required) throw new MappingError(at, rule.each, 'is required but missing');
          return hasDefault ? rule.default : [];
        }
        if (!Array.isArray(items)) {
          throw new MappingError(
            at,
            rule.each,
            `expected a list but found ${describe(items)} (for XML, declare the element under xml.arrays)`,
          );
        }
        const out: unknown[] = [];
        for (let i = 0; i < items.length; i++)
          out.push(await applyRules(inner, items[i], ctx, `${at}[${i}]`));
        return out;
      },
    };
  }
  const read = reader(rule.from!, where);
  return { target, targetText, read: async (el, ctx, at) => finish(read(el, ctx), at, rule.from) };
}

/** JSONata sees the context as `$params`, `$status`, …: the same names the paths use. */
function bindingsOf(ctx: MappingContext): Record<string, unknown> {
  return ctx as Record<string, unknown>;
}

function compileMappingRules(input: MappingInput, o: MappingOptions): CompiledRule[] {
  return Object.entries(input).map(([target, rule]) => compileRule(target, rule, o));
}

async function applyRules(
  rules: readonly CompiledRule[],
  element: unknown,
  context: MappingContext,
  at: string,
): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const r of rules) {
    const value = await r.read(element, context, at === '' ? r.targetText : `${at}.${r.targetText}`);
    if (value !== undefined) setPath(out, r.target, value);
  }
  return out;
}

/** Compiles a mapping once, at load; throws a plain Error naming the rule for what cannot work. */
export function compileMapping(input: MappingInput, o: MappingOptions): Mapping {
  const rules = compileMappingRules(input, o);
  return (body, context) => applyRules(rules, body, context, '');
}
