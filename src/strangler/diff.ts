import * as jsondiffpatch from 'jsondiffpatch';

/**
 * Comparing two answers to the same request (legacy and modern, or control and candidate):
 * status, chosen headers, and JSON bodies structurally, with jsondiffpatch. The delta is turned
 * into a flat list of paths (`items[2].price`), because ignore rules, noise learning and the
 * mismatch report all speak in paths. Array elements that only moved are reported apart from
 * real changes: an ordering difference is often harmless and always a different conversation.
 */

/** One answer as the comparison sees it. */
export interface Answer {
  status: number;
  headers: Record<string, string | undefined>;
  /** Parsed JSON, or the raw text when the body is not JSON. */
  body: unknown;
}

/** What differs between two answers. */
export interface Difference {
  equal: boolean;
  status?: [number, number];
  /** Header name -> [primary, candidate], for the compared headers that differ. */
  headers: Record<string, [string | undefined, string | undefined]>;
  /** Paths whose values differ (added and removed members included). */
  changed: string[];
  /** Array paths whose elements are the same but in another order. */
  reordered: string[];
}

/** What not to compare: JSON paths (`[*]` matches any index, a trailing `.*` any member) and header names. */
export interface IgnoreRules {
  paths?: readonly string[];
  headers?: readonly string[];
  /** Headers compared (lower case); default none: most headers differ by nature (Date, Server). */
  compareHeaders?: readonly string[];
}

const differ = jsondiffpatch.create({
  arrays: { detectMove: true, includeValueOnMove: false },
  // Objects in arrays are matched by their id when they have one (so a moved element is a move,
  // not a change at every index), else by position (so a changed field is that field's path).
  objectHash: (o: object, index?: number) => {
    const r = o as Record<string, unknown>;
    const id = r.id ?? r._id ?? r.key ?? r.sku;
    return id === undefined ? `$$index:${index}` : `id:${JSON.stringify(id)}`;
  },
});

type Delta = Record<string, unknown> | unknown[];

function join(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  return base === '' ? key : `${base}.${key}`;
}

function walk(delta: Delta, path: string, changed: string[], reordered: Set<string>): void {
  if (Array.isArray(delta)) {
    // [new] added, [old, new] modified, [old, 0, 0] deleted, [diff, 0, 2] text diff.
    changed.push(path === '' ? '(body)' : path);
    return;
  }
  if (delta._t === 'a') {
    for (const [k, sub] of Object.entries(delta)) {
      if (k === '_t') continue;
      if (k.startsWith('_')) {
        const d = sub as unknown[];
        // ['', newIndex, 3] is a move; [old, 0, 0] a removal.
        if (d[2] === 3) reordered.add(path);
        else changed.push(join(path, Number(k.slice(1))));
        continue;
      }
      const d = sub as Delta;
      walk(d, join(path, Number(k)), changed, reordered);
    }
    return;
  }
  for (const [k, sub] of Object.entries(delta)) walk(sub as Delta, join(path, k), changed, reordered);
}

/** A compiled path pattern: `items[*].id`; a path covers everything below it (`meta` = `meta.*`). */
function patternOf(text: string): RegExp {
  const base = text.endsWith('.*') ? text.slice(0, -2) : text;
  const escaped = base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\\\[\\\*\\\]/g, '\\[\\d+\\]');
  return new RegExp(`^${escaped}(?:[.[].*)?$`);
}

/** Compiles ignore rules once. */
export function compileIgnore(rules: IgnoreRules = {}): (path: string) => boolean {
  const patterns = (rules.paths ?? []).map(patternOf);
  return (path) => patterns.some((p) => p.test(path));
}

/** Every index in a path as `[*]`, so what was learnt about one element holds for all. */
export function generalize(path: string): string {
  return path.replace(/\[\d+\]/g, '[*]');
}

/** Where two bodies differ, before any ignore rule or noise: what `compareAnswers` filters. */
export interface BodyDelta {
  changed: readonly string[];
  reordered: readonly string[];
}

/** The structural diff of two parsed bodies as paths (jsondiffpatch, then a walk of its delta). */
export function bodyDelta(primary: unknown, candidate: unknown): BodyDelta {
  const changed: string[] = [];
  const reordered = new Set<string>();
  const delta = differ.diff(primary, candidate) as Delta | undefined;
  if (delta !== undefined) walk(delta, '', changed, reordered);
  return { changed: [...new Set(changed)], reordered: [...reordered] };
}

/**
 * Compares two answers under ignore rules and a set of noisy paths (generalized). `delta`: the
 * bodies' diff when already known (a pair of bodies seen before, see ComparisonCache).
 */
export function compareAnswers(
  primary: Answer,
  candidate: Answer,
  options: { ignore?: (path: string) => boolean; noise?: ReadonlySet<string>; rules?: IgnoreRules } = {},
  delta: BodyDelta = bodyDelta(primary.body, candidate.body),
): Difference {
  const ignore = options.ignore ?? compileIgnore(options.rules);
  const noise = options.noise;
  const headers: Difference['headers'] = {};
  const skipHeaders = new Set((options.rules?.headers ?? []).map((h) => h.toLowerCase()));
  for (const name of options.rules?.compareHeaders ?? []) {
    const h = name.toLowerCase();
    if (skipHeaders.has(h)) continue;
    const a = primary.headers[h];
    const b = candidate.headers[h];
    if (a !== b) headers[h] = [a, b];
  }
  const keep = (p: string) => !ignore(p) && !(noise?.has(generalize(p)) ?? false);
  const out: Difference = {
    equal: false,
    headers,
    changed: delta.changed.filter(keep),
    reordered: delta.reordered.filter(keep),
  };
  if (primary.status !== candidate.status) out.status = [primary.status, candidate.status];
  out.equal =
    out.status === undefined &&
    Object.keys(headers).length === 0 &&
    out.changed.length === 0 &&
    out.reordered.length === 0;
  return out;
}

/** Parses a body as JSON when it says so (or looks like it), else keeps the text. */
export function bodyOf(text: string, contentType: string | undefined): unknown {
  if (text === '') return null;
  if (contentType === undefined || /json/i.test(contentType) || /^\s*[[{]/.test(text)) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}
