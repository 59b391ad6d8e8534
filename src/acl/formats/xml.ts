import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { z } from 'zod';
import { FormatError } from './errors.js';

/**
 * XML for legacy systems, through fast-xml-parser, made safe and strict:
 *
 * - a document with a DOCTYPE is refused before parsing: DTDs are where entity bombs (billion
 *   laughs) and external entities (XXE) live, and SOAP forbids them anyway; with no DTD only
 *   the five predefined entities and character references are decoded;
 * - well-formedness is checked first (the parser alone is lenient with broken documents);
 * - nesting depth and size are bounded;
 * - every value stays a string: types come from the mapping's declared coercions, never from
 *   guessing (`00123` stays `00123`);
 * - an element becomes a list only when its path is declared under `arrays:`, so a list of
 *   one and a list of many have the same shape (no silent "object or array" fallback).
 *
 * Namespace prefixes are removed when reading (paths use local names: `GetStockResponse.Qty`);
 * when writing, element names keep the prefixes the mapping gives them (`w:GetStock`), and the
 * declarations come from `namespaces:`.
 */

export const xmlOptionsSchema = z.strictObject({
  /** Paths (local names, dots) of elements that are lists even when only one is present. */
  arrays: z.array(z.string().min(1)).default([]),
  /** Prefix -> namespace URI, declared on the root (or the SOAP envelope). */
  namespaces: z.record(z.string(), z.string()).default({}),
  /** Deepest element nesting accepted. */
  maxDepth: z.number().int().min(1).max(1000).default(64),
});
export type XmlOptions = z.output<typeof xmlOptionsSchema>;

const DOCTYPE = /<!DOCTYPE|<!ENTITY/i;

const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/**
 * XML's own entity rules and nothing more: the five predefined entities and character
 * references. (The parser's default decoder leaves `&#233;` as it is; HTML entities such as
 * `&nbsp;` are not XML and stay undecoded.)
 */
const xmlEntities = {
  setExternalEntities() {},
  addInputEntities() {},
  reset() {},
  setXmlVersion() {},
  decode(text: string): string {
    if (!text.includes('&')) return text;
    return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (whole, ref: string) => {
      if (ref[0] !== '#') return PREDEFINED[ref] ?? whole;
      const code = ref[1] === 'x' ? Number.parseInt(ref.slice(2), 16) : Number(ref.slice(1));
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    });
  },
};

/** Parses XML text into an object tree under the options' limits. */
export function parseXml(text: string, options: XmlOptions, arrayPrefix = ''): Record<string, unknown> {
  if (DOCTYPE.test(text)) {
    throw new FormatError(
      'the XML document has a DOCTYPE or ENTITY declaration, which is refused (no DTDs, no entities)',
    );
  }
  const valid = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (valid !== true) {
    throw new FormatError(
      `the XML is not well-formed at line ${valid.err.line}, column ${valid.err.col}: ${valid.err.msg}`,
    );
  }
  const arrays = new Set(options.arrays.map((p) => arrayPrefix + p));
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@',
    removeNSPrefix: true,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    processEntities: true,
    entityDecoder: xmlEntities,
    ignoreDeclaration: true,
    ignorePiTags: true,
    maxNestedTags: options.maxDepth,
    isArray: (_name, jpath, _leaf, isAttribute) => !isAttribute && arrays.has(String(jpath)),
  });
  let tree: Record<string, unknown>;
  try {
    tree = parser.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new FormatError(`the XML cannot be read: ${(err as Error).message}`);
  }
  const roots = Object.keys(tree).filter((k) => !k.startsWith('@'));
  if (roots.length !== 1) {
    throw new FormatError(`an XML document has one root element, this one has ${roots.length}`);
  }
  // removeNSPrefix also drops the xmlns declarations: they say nothing about the data.
  return tree;
}

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  format: false,
  suppressEmptyNode: true,
  processEntities: true,
});

/** Writes an object tree as XML (values escaped; `@name` members become attributes). */
export function buildXml(tree: Record<string, unknown>): string {
  return builder.build(tree) as string;
}

/** `{ w: 'urn:x' }` as attributes: `{ '@xmlns:w': 'urn:x' }`. */
export function namespaceAttributes(namespaces: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [prefix, uri] of Object.entries(namespaces))
    out[prefix === '' ? '@xmlns' : `@xmlns:${prefix}`] = uri;
  return out;
}
