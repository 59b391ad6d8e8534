import { parse } from 'csv-parse/sync';
import { z } from 'zod';
import { FormatError } from './errors.js';

/**
 * Record formats: CSV (read with csv-parse) and fixed-width records (the layouts of mainframe
 * and COBOL-era files: every field a fixed number of characters). A record is an object keyed
 * by field name; values stay strings until the mapping coerces them.
 */

export const csvOptionsSchema = z.strictObject({
  delimiter: z.string().length(1).default(','),
  /** true: the first line names the columns; a list: the column names (the data has no header line). */
  header: z.union([z.literal(true), z.array(z.string().min(1)).min(1)]).default(true),
  /** Longest record accepted, in characters. */
  maxRecordSize: z.number().int().min(1).default(65_536),
});
export type CsvOptions = z.output<typeof csvOptionsSchema>;

export const fixedOptionsSchema = z.strictObject({
  fields: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        width: z.number().int().min(1),
        /** How a value shorter than its width is padded when writing: text left, numbers right. */
        align: z.enum(['left', 'right']).default('left'),
        pad: z.string().length(1).default(' '),
      }),
    )
    .min(1),
  /** Records separated by line breaks (default), or back to back with no separator. */
  separator: z.enum(['newline', 'none']).default('newline'),
});
export type FixedOptions = z.output<typeof fixedOptionsSchema>;

export type Row = Record<string, string>;

/** Reads CSV text into rows. */
export function parseCsv(text: string, o: CsvOptions): Row[] {
  try {
    return parse(text, {
      delimiter: o.delimiter,
      columns: o.header === true ? true : o.header,
      skip_empty_lines: true,
      bom: true,
      max_record_size: o.maxRecordSize,
      relax_column_count: false,
    }) as Row[];
  } catch (err) {
    throw new FormatError(`the CSV cannot be read: ${(err as Error).message}`);
  }
}

/**
 * Writes rows as CSV (RFC 4180 quoting). By hand: csv-parse has no writer and the quoting rule
 * is three lines; the column order is the header list or the first row's keys.
 */
export function buildCsv(rows: readonly Record<string, unknown>[], o: CsvOptions): string {
  const columns = o.header === true ? Object.keys(rows[0] ?? {}) : o.header;
  const quote = (v: unknown): string => {
    const s = v === undefined || v === null ? '' : String(v);
    return /["\r\n]/.test(s) || s.includes(o.delimiter) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const lines = rows.map((r) => columns.map((c) => quote(r[c])).join(o.delimiter));
  if (o.header === true) lines.unshift(columns.map(quote).join(o.delimiter));
  return `${lines.join('\r\n')}\r\n`;
}

function recordWidth(o: FixedOptions): number {
  return o.fields.reduce((n, f) => n + f.width, 0);
}

/** Reads fixed-width records; a record of the wrong length is an error, never a guess. */
export function parseFixed(text: string, o: FixedOptions): Row[] {
  const width = recordWidth(o);
  let records: string[];
  if (o.separator === 'none') {
    if (text.length % width !== 0) {
      throw new FormatError(
        `the data is ${text.length} characters, not a whole number of ${width}-character records`,
      );
    }
    records = [];
    for (let i = 0; i < text.length; i += width) records.push(text.slice(i, i + width));
  } else {
    records = text.split(/\r?\n/);
    if (records.at(-1) === '') records.pop();
  }
  return records.map((record, n) => {
    if (record.length !== width) {
      throw new FormatError(`record ${n + 1} is ${record.length} characters; the layout says ${width}`);
    }
    const row: Row = {};
    let at = 0;
    for (const f of o.fields) {
      row[f.name] = record.slice(at, at + f.width);
      at += f.width;
    }
    return row;
  });
}

/** Writes fixed-width records; a value longer than its field is an error (never cut silently). */
export function buildFixed(rows: readonly Record<string, unknown>[], o: FixedOptions): string {
  const lines = rows.map((r, n) =>
    o.fields
      .map((f) => {
        const v = r[f.name];
        const s = v === undefined || v === null ? '' : String(v);
        if (s.length > f.width) {
          throw new FormatError(`record ${n + 1}: ${f.name} "${s}" is longer than its ${f.width} characters`);
        }
        return f.align === 'left' ? s.padEnd(f.width, f.pad) : s.padStart(f.width, f.pad);
      })
      .join(''),
  );
  return o.separator === 'none' ? lines.join('') : `${lines.join('\r\n')}\r\n`;
}
