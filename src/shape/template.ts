import { getPath, type Path, parsePath } from './paths.js';

/**
 * Templates like `/products/{id}/reviews?brand={product.brandId}`: literal text with `{...}`
 * variables, compiled once at load. A variable is a dot path whose first name says where the
 * value comes from:
 *
 * - `{id}` (one name): a route parameter (`{*}` is the wildcard);
 * - `{params.id}`, `{query.page}`, `{header.accept-language}`, `{jwt.sub}`;
 * - `{item}` / `{item.id}`: the current element of a `forEach` fan-out;
 * - `{product.brandId}`: a field of another part's response, which makes that part a dependency.
 */

export type Source =
  | { kind: 'param'; name: string }
  | { kind: 'query'; name: string }
  | { kind: 'header'; name: string }
  | { kind: 'jwt'; path: Path }
  | { kind: 'item'; path: Path }
  | { kind: 'part'; part: string; path: Path };

export type Piece = string | { source: Source; text: string };

export interface Template {
  readonly text: string;
  readonly pieces: readonly Piece[];
  /** Part names this template reads. */
  readonly parts: readonly string[];
  readonly usesItem: boolean;
  readonly usesQuery: boolean;
}

const NAMESPACES = new Set(['params', 'query', 'header', 'jwt', 'item']);
/** Names a part may not take, because templates use them as namespaces. */
export const RESERVED_PART_NAMES: ReadonlySet<string> = NAMESPACES;

/** Compiles a template, or returns the problems with it (unknown parts are checked by the caller). */
export function compileTemplate(text: string): Template | string {
  const pieces: Piece[] = [];
  const parts: string[] = [];
  let usesItem = false;
  let usesQuery = false;
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('{', i);
    const close = text.indexOf('}', i);
    if (close >= 0 && (open < 0 || close < open))
      return `unmatched "}" at character ${close + 1} of "${text}"`;
    if (open < 0) {
      pieces.push(text.slice(i));
      break;
    }
    if (open > i) pieces.push(text.slice(i, open));
    const end = text.indexOf('}', open);
    if (end < 0) return `unclosed "{" at character ${open + 1} of "${text}"`;
    const inner = text.slice(open + 1, end).trim();
    const path = parsePath(inner);
    if (typeof path === 'string') return `{${inner}}: ${path}`;
    const source = sourceOf(path);
    if (typeof source === 'string') return `{${inner}}: ${source}`;
    if (source.kind === 'part') parts.push(source.part);
    if (source.kind === 'item') usesItem = true;
    if (source.kind === 'query') usesQuery = true;
    pieces.push({ source, text: inner });
    i = end + 1;
  }
  return { text, pieces, parts, usesItem, usesQuery };
}

function sourceOf(path: Path): Source | string {
  const head = path[0]!;
  if (!('key' in head)) return 'must start with a name';
  const rest = path.slice(1);
  const second = rest[0];
  const one = (): string | undefined => {
    if (rest.length === 1 && second && 'key' in second) return second.key;
    return undefined;
  };
  if (path.length === 1 && head.key !== 'item') return { kind: 'param', name: head.key };
  switch (head.key) {
    case 'params': {
      const name = one();
      return name === undefined ? 'write {params.NAME}' : { kind: 'param', name };
    }
    case 'query': {
      const name = one();
      return name === undefined ? 'write {query.NAME}' : { kind: 'query', name };
    }
    case 'header': {
      const name = one();
      return name === undefined ? 'write {header.NAME}' : { kind: 'header', name: name.toLowerCase() };
    }
    case 'jwt':
      return { kind: 'jwt', path: rest };
    case 'item':
      return { kind: 'item', path: rest };
    default:
      return { kind: 'part', part: head.key, path: rest };
  }
}

/** Everything a template may read while one request runs. */
export interface Scope {
  params: Record<string, string>;
  query: URLSearchParams | undefined;
  headers: Record<string, string | string[] | undefined>;
  jwt: unknown;
  item: unknown;
  /** Response bodies of finished parts, by name. */
  bodies: Record<string, unknown>;
}

/** How a rendered value is written into its place. */
export type Encoding = 'path' | 'raw';

/** Why a template could not be rendered: the variable whose value is missing or unusable. */
export class MissingValue {
  constructor(
    readonly variable: string,
    readonly why: string,
  ) {}
}

/** Renders a template; a missing or unusable value yields a MissingValue naming the variable. */
export function render(t: Template, scope: Scope, encoding: Encoding): string | MissingValue {
  // Fast path: most templates have one or two variables; plain concatenation beats join().
  let out = '';
  for (const piece of t.pieces) {
    if (typeof piece === 'string') {
      out += piece;
      continue;
    }
    const value = sourceValue(piece.source, scope);
    const text = scalarText(value);
    if (text === undefined) {
      return new MissingValue(piece.text, value === undefined ? 'no value' : 'not a string, number or list');
    }
    if (encoding === 'path') {
      const isWildcard = piece.source.kind === 'param' && piece.source.name === '*';
      const encoded = isWildcard ? encodeWildcard(text) : encodeSegment(text);
      if (encoded === undefined) return new MissingValue(piece.text, 'a path value may not be "." or ".."');
      out += encoded;
    } else {
      // CR/LF in a header value would be header injection; undici would refuse it anyway.
      if (/[\r\n\0]/.test(text)) return new MissingValue(piece.text, 'contains a line break');
      out += text;
    }
  }
  return out;
}

/** The raw value of a variable, for query parameters (which the caller encodes). */
export function renderValue(t: Template, scope: Scope): string | MissingValue {
  return render(t, scope, 'raw');
}

function sourceValue(source: Source, scope: Scope): unknown {
  switch (source.kind) {
    case 'param':
      return scope.params[source.name];
    case 'query':
      return scope.query?.get(source.name) ?? undefined;
    case 'header': {
      const v = scope.headers[source.name];
      return Array.isArray(v) ? v.join(', ') : v;
    }
    case 'jwt':
      return source.path.length === 0 ? undefined : getPath(scope.jwt, source.path);
    case 'item':
      return getPath(scope.item, source.path);
    case 'part':
      return getPath(scope.bodies[source.part], source.path);
  }
}

/** Strings, numbers and booleans as text; a list of them joined with commas (for batch endpoints). */
function scalarText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || typeof x === 'number')) {
    return v.join(',');
  }
  return undefined;
}

function encodeSegment(text: string): string | undefined {
  // A value of "." or ".." would let a response steer the upstream path (path traversal).
  if (text === '.' || text === '..' || text === '') return undefined;
  return encodeURIComponent(text);
}

function encodeWildcard(text: string): string | undefined {
  const segs = text.split('/');
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    if (seg === '.' || seg === '..') return undefined;
    segs[i] = encodeURIComponent(seg);
  }
  return segs.join('/');
}
