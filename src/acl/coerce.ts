import { z } from 'zod';

/**
 * Type coercion between a legacy value and its modern form. A coercion is written once and
 * works in both directions: `format` and the other options always describe the legacy side,
 * the modern side is always the same (ISO 8601 dates, JSON numbers and booleans). So one rule
 * `{ type: date, format: DD.MM.YYYY }` reads `31.12.2024` from the legacy answer as
 * `2024-12-31` and writes `2024-12-31` into a legacy request as `31.12.2024`.
 *
 * Written by hand: date libraries parse leniently (`2024-02-31` becomes March 2nd), and an
 * anti-corruption layer must refuse what it does not understand instead of guessing.
 */

export const coercionSchema = z.strictObject({
  type: z.enum(['string', 'integer', 'number', 'decimal', 'boolean', 'date', 'datetime']),
  /** date/datetime: the legacy layout, e.g. `YYYYMMDD`, `DD.MM.YYYY`, `YYYYMMDDHHmmss`. */
  format: z.string().optional(),
  /** datetime: the legacy side's UTC offset (`+01:00`, `Z`); default `Z`. */
  offset: z
    .string()
    .regex(/^(Z|[+-]\d{2}:\d{2})$/, 'write Z or an offset like +01:00')
    .optional(),
  /** decimal: the legacy decimal separator; default `.`. */
  decimalSeparator: z.enum(['.', ',']).optional(),
  /** decimal: digits after the separator; with `implied`, the legacy text has no separator (`001250` = 12.50). */
  scale: z.number().int().min(0).max(18).optional(),
  implied: z.boolean().optional(),
  /** boolean: legacy spellings; the first of each list is written to the legacy side. */
  true: z.array(z.string()).min(1).optional(),
  false: z.array(z.string()).min(1).optional(),
  /** string: trim blanks (fixed-width padding); default true. */
  trim: z.boolean().optional(),
});
export type CoercionOptions = z.output<typeof coercionSchema>;

/** Which way a value travels. */
export type Direction = 'toLegacy' | 'fromLegacy';

/** A value that cannot be coerced; the caller adds the path. */
export class CoercionError extends Error {}

export type Coercion = (value: unknown) => unknown;

const TOKENS = /YYYY|MM|DD|HH|mm|ss|SSS/g;
type Token = 'YYYY' | 'MM' | 'DD' | 'HH' | 'mm' | 'ss' | 'SSS';
const WIDTH: Record<Token, number> = { YYYY: 4, MM: 2, DD: 2, HH: 2, mm: 2, ss: 2, SSS: 3 };

interface Layout {
  text: string;
  regex: RegExp;
  order: Token[];
}

function layoutOf(format: string): Layout {
  const order: Token[] = [];
  let source = '^';
  let last = 0;
  for (const m of format.matchAll(TOKENS)) {
    source += escapeRegExp(format.slice(last, m.index));
    const token = m[0] as Token;
    order.push(token);
    source += `(\\d{${WIDTH[token]}})`;
    last = m.index + token.length;
  }
  source += `${escapeRegExp(format.slice(last))}$`;
  return { text: format, regex: new RegExp(source), order };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

interface Parts {
  YYYY: number;
  MM: number;
  DD: number;
  HH: number;
  mm: number;
  ss: number;
  SSS: number;
}

function valid(p: Parts): boolean {
  if (p.MM < 1 || p.MM > 12 || p.DD < 1 || p.HH > 23 || p.mm > 59 || p.ss > 59) return false;
  const days = new Date(Date.UTC(p.YYYY, p.MM, 0)).getUTCDate();
  return p.DD <= days;
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');

function parseWith(layout: Layout, text: string): Parts {
  const m = layout.regex.exec(text);
  if (!m) throw new CoercionError(`"${text}" does not match the date layout ${layout.text}`);
  const p: Parts = { YYYY: 0, MM: 1, DD: 1, HH: 0, mm: 0, ss: 0, SSS: 0 };
  layout.order.forEach((t, i) => {
    p[t] = Number(m[i + 1]);
  });
  if (!valid(p)) throw new CoercionError(`"${text}" is not a real date (layout ${layout.text})`);
  return p;
}

function formatWith(layout: Layout, p: Parts): string {
  return layout.text.replace(TOKENS, (t) => pad(p[t as Token], WIDTH[t as Token]));
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const ISO_DATETIME =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3})\d*)?(Z|[+-]\d{2}:\d{2})$/;

function offsetMinutes(offset: string): number {
  if (offset === 'Z') return 0;
  const sign = offset[0] === '-' ? -1 : 1;
  return sign * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
}

function partsAt(ms: number): Parts {
  const d = new Date(ms);
  return {
    YYYY: d.getUTCFullYear(),
    MM: d.getUTCMonth() + 1,
    DD: d.getUTCDate(),
    HH: d.getUTCHours(),
    mm: d.getUTCMinutes(),
    ss: d.getUTCSeconds(),
    SSS: d.getUTCMilliseconds(),
  };
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new CoercionError(`expected a text value, got ${describe(value)}`);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

const DEFAULT_TRUE = ['true', '1', 'Y', 'y', 'yes', 'J'];
const DEFAULT_FALSE = ['false', '0', 'N', 'n', 'no'];

/** Compiles a coercion for one direction; throws a plain Error for options that cannot work. */
export function compileCoercion(o: CoercionOptions, direction: Direction): Coercion {
  const toModern = direction === 'fromLegacy';
  switch (o.type) {
    case 'string': {
      const trim = o.trim ?? true;
      return (v) => (trim ? text(v).trim() : text(v));
    }
    case 'integer':
      return (v) => {
        const t = text(v).trim();
        if (!/^[+-]?\d+$/.test(t)) throw new CoercionError(`"${t}" is not a whole number`);
        const n = Number(t);
        if (!Number.isSafeInteger(n)) throw new CoercionError(`${t} is too large for a JSON number`);
        return toModern ? n : String(n);
      };
    case 'number':
      return (v) => {
        const t = text(v).trim();
        if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t))
          throw new CoercionError(`"${t}" is not a number`);
        return toModern ? Number(t) : t;
      };
    case 'decimal':
      return decimalCoercion(o, toModern);
    case 'boolean': {
      const yes = o.true ?? DEFAULT_TRUE;
      const no = o.false ?? DEFAULT_FALSE;
      return (v) => {
        if (toModern) {
          const t = text(v).trim();
          if (yes.includes(t)) return true;
          if (no.includes(t)) return false;
          throw new CoercionError(`"${t}" is not one of the boolean spellings ${[...yes, ...no].join(', ')}`);
        }
        if (typeof v !== 'boolean') throw new CoercionError(`expected true or false, got ${describe(v)}`);
        return v ? yes[0]! : no[0]!;
      };
    }
    case 'date': {
      const layout = layoutOf(o.format ?? 'YYYY-MM-DD');
      return (v) => {
        if (toModern) {
          const p = parseWith(layout, text(v).trim());
          return `${pad(p.YYYY, 4)}-${pad(p.MM, 2)}-${pad(p.DD, 2)}`;
        }
        const m = ISO_DATE.exec(text(v));
        if (!m) throw new CoercionError(`"${text(v)}" is not a date like 2024-12-31`);
        const p: Parts = { YYYY: +m[1]!, MM: +m[2]!, DD: +m[3]!, HH: 0, mm: 0, ss: 0, SSS: 0 };
        if (!valid(p)) throw new CoercionError(`"${text(v)}" is not a real date`);
        return formatWith(layout, p);
      };
    }
    case 'datetime': {
      const layout = layoutOf(o.format ?? 'YYYY-MM-DDTHH:mm:ss');
      const offset = offsetMinutes(o.offset ?? 'Z');
      return (v) => {
        if (toModern) {
          const p = parseWith(layout, text(v).trim());
          const ms = Date.UTC(p.YYYY, p.MM - 1, p.DD, p.HH, p.mm, p.ss, p.SSS) - offset * 60_000;
          return new Date(ms).toISOString();
        }
        const t = text(v);
        const m = ISO_DATETIME.exec(t);
        if (!m) throw new CoercionError(`"${t}" is not a date-time like 2024-12-31T23:59:00Z`);
        const ms = Date.parse(t);
        if (Number.isNaN(ms)) throw new CoercionError(`"${t}" is not a real date-time`);
        return formatWith(layout, partsAt(ms + offset * 60_000));
      };
    }
  }
}

function decimalCoercion(o: CoercionOptions, toModern: boolean): Coercion {
  const sep = o.decimalSeparator ?? '.';
  const scale = o.scale;
  if (o.implied && scale === undefined)
    throw new Error('an implied decimal needs a scale (digits after the point)');
  const pattern = o.implied ? /^[+-]?\d+$/ : sep === ',' ? /^[+-]?\d+(,\d+)?$/ : /^[+-]?\d+(\.\d+)?$/;
  return (v) => {
    if (toModern) {
      const t = text(v).trim();
      if (!pattern.test(t))
        throw new CoercionError(
          `"${t}" is not a decimal${o.implied ? ` with ${scale} implied digits` : ` with "${sep}"`}`,
        );
      if (o.implied) return Number(t) / 10 ** scale!;
      return Number(t.replace(',', '.'));
    }
    const n = typeof v === 'number' ? v : Number(text(v));
    if (!Number.isFinite(n)) throw new CoercionError(`${describe(v)} is not a number`);
    if (o.implied) return String(Math.round(n * 10 ** scale!));
    const fixed = scale === undefined ? String(n) : n.toFixed(scale);
    return sep === ',' ? fixed.replace('.', ',') : fixed;
  };
}
