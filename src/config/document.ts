import { LineCounter, parseDocument } from 'yaml';
import { shield, unshield } from '../core/config.js';
import { TrellisError } from '../core/errors.js';

export type DocumentFormat = 'json' | 'yaml';

/** The default label when none is given (labels separate environments: `prod`, `staging`, …). */
export const DEFAULT_LABEL = 'default';

/** One configuration document at one revision. `content` holds secret references unresolved. */
export interface ConfigDocument {
  /** `namespace/name`, like `shop/gateway`. */
  key: string;
  label: string;
  format: DocumentFormat;
  /** The text as written (JSON or YAML). */
  content: string;
  /** The parsed document. */
  value: unknown;
  /** Store-wide revision of this version: pass it as If-Match / expectedRevision to update safely. */
  revision: number;
  author: string;
  message: string;
  /** ISO 8601 time of the write. */
  time: string;
}

/** One version in a key's history (newest first); deletions appear as `deleted: true`. */
export interface HistoryEntry {
  key: string;
  label: string;
  revision: number;
  author: string;
  message: string;
  time: string;
  deleted: boolean;
  format?: DocumentFormat;
  content?: string;
}

/** What the store keeps per version (the KV value, JSON-encoded). */
export interface Envelope {
  format: DocumentFormat;
  content: string;
  author: string;
  message: string;
  time: string;
  /** A deletion is a tombstone, so the history keeps who deleted it and why. */
  deleted?: boolean;
}

// `@` separates a key from a revision in history keys, so it may not appear in keys.
const KEY_RE = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;
// `.` and `..` would be rewritten by any URL or path that carries the key (`x/../../schemas/shop`
// reaches another endpoint over HTTP), so they are never segments of a key.
const DOT_SEGMENT_RE = /(^|\/)\.\.?(\/|$)/;
const LABEL_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** Throws TRELLIS_E_CONFIG_KEY_INVALID unless `key` is like `shop/gateway`. */
export function checkConfigKey(key: string): void {
  if (typeof key !== 'string' || key.length > 512 || !KEY_RE.test(key) || DOT_SEGMENT_RE.test(key)) {
    const why =
      typeof key === 'string' && DOT_SEGMENT_RE.test(key)
        ? '"." and ".." are not allowed as segments'
        : typeof key === 'string' && /(^|\/)(\/|$)/.test(key)
          ? 'it has an empty segment'
          : 'it has characters outside letters, digits, "_", "." and "-"';
    throw new TrellisError(
      'TRELLIS_E_CONFIG_KEY_INVALID',
      `config key ${JSON.stringify(key)} is invalid (${why}): use segments of letters, digits, "_", "." and "-" separated by "/" (like shop/gateway)`,
      { status: 400 },
    );
  }
}

/** Throws TRELLIS_E_CONFIG_KEY_INVALID unless `prefix` is empty or a key prefix (may end in `/`). */
export function checkConfigPrefix(prefix: string): void {
  if (prefix === '') return;
  checkConfigKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}

/** Throws TRELLIS_E_CONFIG_LABEL_INVALID unless `label` is a short name like `prod`. */
export function checkLabel(label: string): void {
  if (typeof label !== 'string' || !LABEL_RE.test(label)) {
    throw new TrellisError(
      'TRELLIS_E_CONFIG_LABEL_INVALID',
      `label ${JSON.stringify(label)} is invalid: use 1 to 64 letters, digits, "_", "." or "-" (like prod)`,
      { status: 400 },
    );
  }
}

/** Guesses the format of a document: JSON when it starts like JSON, YAML otherwise. */
export function detectFormat(content: string): DocumentFormat {
  return /^\s*[[{]/.test(content) ? 'json' : 'yaml';
}

/** Parses a document, throwing TRELLIS_E_CONFIG_DOCUMENT_INVALID with the line and column of a syntax error. */
export function parseContent(content: string, format: DocumentFormat): unknown {
  if (format === 'json') {
    try {
      return JSON.parse(content);
    } catch (err) {
      throw new TrellisError(
        'TRELLIS_E_CONFIG_DOCUMENT_INVALID',
        `the document is not valid JSON: ${(err as Error).message}`,
        { status: 400, cause: err },
      );
    }
  }
  const lineCounter = new LineCounter();
  // `${PORT}` is kept as written, even inside a flow map (`{ port: ${PORT} }`), as gateway files allow.
  const { shielded, templates } = shield(content);
  const doc = parseDocument(shielded, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const pos = lineCounter.linePos(first.pos[0]);
    throw new TrellisError(
      'TRELLIS_E_CONFIG_DOCUMENT_INVALID',
      `the document is not valid YAML at line ${pos.line}, column ${pos.col}: ${first.message.split(' at line ')[0]!.split('\n')[0]}`,
      { status: 400 },
    );
  }
  try {
    const value: unknown = doc.toJS();
    return templates.length === 0 ? value : restore(value, templates);
  } catch (err) {
    // yaml refuses aliases that expand past its limit (a "billion laughs" bomb): bad input, not a crash.
    throw new TrellisError(
      'TRELLIS_E_CONFIG_DOCUMENT_INVALID',
      `the document was refused: ${(err as Error).message.replace(/ indicates.*/, '')} (its aliases expand too much; write the values out)`,
      { status: 400, cause: err },
    );
  }
}

function restore(value: unknown, templates: readonly string[]): unknown {
  if (typeof value === 'string') return unshield(value, templates);
  if (Array.isArray(value)) return value.map((v) => restore(v, templates));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [unshield(k, templates), restore(v, templates)]),
    );
  }
  return value;
}

export function encodeEnvelope(e: Envelope): string {
  return JSON.stringify(e);
}

export function decodeEnvelope(raw: string): Envelope {
  return JSON.parse(raw) as Envelope;
}

/** A stored envelope as a document (parsing its content again). */
export function toDocument(key: string, label: string, revision: number, e: Envelope): ConfigDocument {
  return {
    key,
    label,
    format: e.format,
    content: e.content,
    value: parseContent(e.content, e.format),
    revision,
    author: e.author,
    message: e.message,
    time: e.time,
  };
}
