import { z } from 'zod';
import { decodeText, encodeText, requireCharset } from '../charset.js';
import { FormatError } from './errors.js';
import {
  buildCsv,
  buildFixed,
  csvOptionsSchema,
  fixedOptionsSchema,
  parseCsv,
  parseFixed,
  type Row,
} from './records.js';
import { buildEnvelope, parseEnvelope, type SoapVersion, soapHeaders } from './soap.js';
import { buildXml, namespaceAttributes, parseXml, xmlOptionsSchema } from './xml.js';

export { FormatError, LegacyFault } from './errors.js';

/** How the legacy side writes its bodies (fields shared by every schema that names a format). */
export const formatFields = {
  format: z.enum(['json', 'xml', 'soap11', 'soap12', 'csv', 'fixed']),
  /** The legacy side's character set (utf-8, latin1, windows-1252, cp037 for EBCDIC, ...). */
  charset: z.string().default('utf-8'),
  /** XML and SOAP: declared lists, namespaces, depth limit. */
  xml: xmlOptionsSchema.default({ arrays: [], namespaces: {}, maxDepth: 64 }),
  /** SOAP: the action (SOAPAction header in 1.1, the action parameter in 1.2). */
  soapAction: z.string().optional(),
  csv: csvOptionsSchema.default({ delimiter: ',', header: true, maxRecordSize: 65_536 }),
  fixed: fixedOptionsSchema.optional(),
};

/** The checks across format fields, for `superRefine`. */
export function checkFormat(o: { format: string; fixed?: unknown }, ctx: z.RefinementCtx): void {
  if (o.format === 'fixed' && o.fixed === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['fixed'],
      message: 'format fixed needs fixed: { fields: [{ name, width }] }',
    });
  }
}

export const formatOptionsSchema = z.strictObject(formatFields).superRefine(checkFormat);
export type FormatOptions = z.output<typeof formatOptionsSchema>;

/** Encodes and decodes the bodies of one legacy format. */
export interface LegacyCodec {
  readonly format: FormatOptions['format'];
  /** Headers a request in this format carries (Content-Type, SOAPAction). */
  readonly requestHeaders: Readonly<Record<string, string>>;
  encode(value: unknown): Buffer;
  /** Decodes an answer; throws FormatError for what it cannot read, LegacyFault for a SOAP Fault. */
  decode(bytes: Buffer): unknown;
}

function rowsOf(value: unknown): Record<string, unknown>[] {
  if (Array.isArray(value)) return value as Record<string, unknown>[];
  if (typeof value === 'object' && value !== null) return [value as Record<string, unknown>];
  throw new FormatError('records must be an object or a list of objects');
}

function utf8(bytes: Buffer): string {
  try {
    // Fatal: a legacy answer in another charset must fail loudly, not turn into U+FFFD.
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FormatError(
      'the answer is not valid UTF-8: declare the legacy charset (e.g. charset: windows-1252)',
    );
  }
}

/** Builds the codec of a legacy format (checks the charset at load). */
export function createCodec(o: FormatOptions): LegacyCodec {
  const charset = requireCharset(o.charset);
  const isUtf8 = charset === 'utf-8' || charset === 'utf8';
  const toText = (bytes: Buffer) => (isUtf8 ? utf8(bytes) : decodeText(bytes, charset));
  const toBytes = (text: string) => encodeText(text, charset);
  switch (o.format) {
    case 'json':
      return {
        format: o.format,
        requestHeaders: { 'content-type': `application/json; charset=${charset}` },
        encode: (v) => toBytes(JSON.stringify(v)),
        decode: (bytes) => {
          const text = toText(bytes);
          try {
            return JSON.parse(text);
          } catch (err) {
            throw new FormatError(`the answer is not JSON: ${(err as Error).message}`);
          }
        },
      };
    case 'xml':
      return {
        format: o.format,
        requestHeaders: { 'content-type': `application/xml; charset=${charset}` },
        encode: (v) => {
          if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.keys(v).length !== 1) {
            throw new FormatError('an XML body must be an object with exactly one key: the root element');
          }
          const [root, content] = Object.entries(v as Record<string, unknown>)[0]!;
          const withNs =
            typeof content === 'object' && content !== null && !Array.isArray(content)
              ? { ...namespaceAttributes(o.xml.namespaces), ...content }
              : content;
          return toBytes(`<?xml version="1.0" encoding="${charset}"?>${buildXml({ [root]: withNs })}`);
        },
        decode: (bytes) => parseXml(toText(bytes), o.xml),
      };
    case 'soap11':
    case 'soap12': {
      const version: SoapVersion = o.format === 'soap11' ? '1.1' : '1.2';
      return {
        format: o.format,
        requestHeaders: soapHeaders(version, o.soapAction, charset),
        encode: (v) => toBytes(buildEnvelope(version, v, o.xml, charset)),
        decode: (bytes) => parseEnvelope(toText(bytes), o.xml),
      };
    }
    case 'csv':
      return {
        format: o.format,
        requestHeaders: { 'content-type': `text/csv; charset=${charset}` },
        encode: (v) => toBytes(buildCsv(rowsOf(v), o.csv)),
        decode: (bytes): Row[] => parseCsv(toText(bytes), o.csv),
      };
    case 'fixed':
      return {
        format: o.format,
        requestHeaders: { 'content-type': `text/plain; charset=${charset}` },
        encode: (v) => toBytes(buildFixed(rowsOf(v), o.fixed!)),
        decode: (bytes): Row[] => parseFixed(toText(bytes), o.fixed!),
      };
  }
}
