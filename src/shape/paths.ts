/**
 * Dot paths into JSON values: `product.brand.name`, `images[0]`, `items[*].productId`. Shared by
 * the response shaping of aggregation and the field mappings of the anti-corruption layer.
 * `[*]` walks every element of an array. Paths are parsed once, at load; the functions here run
 * per request and allocate only what they return.
 *
 * Written by hand because the shapes we need (projection through `[*]`, delete and rename inside
 * array elements, "stop quietly at missing data") are not what JSONPath libraries offer, and the
 * grammar is tiny.
 */

/** One step of a path: an object key, an array index, or every element (`[*]`). */
export type Segment = { key: string } | { index: number } | { each: true };
export type Path = readonly Segment[];

const TOKEN_RE = /([^.[\]]+)|\[(\d+|\*)\]|(\.)/y;

/** Parses `a.b[0].c[*].d`; returns an error message instead of a path when it is malformed. */
export function parsePath(text: string): Path | string {
  if (text === '') return 'is empty: write a dot path like product.name or items[*].id';
  const out: Segment[] = [];
  let expectKey = true;
  TOKEN_RE.lastIndex = 0;
  while (TOKEN_RE.lastIndex < text.length) {
    const at = TOKEN_RE.lastIndex;
    const m = TOKEN_RE.exec(text);
    if (!m) return `"${text}" is not a valid path at character ${at + 1}: write a dot path like items[*].id`;
    if (m[1] !== undefined) {
      if (!expectKey) return `"${text}" is not a valid path: a "." is missing before "${m[1]}"`;
      out.push({ key: m[1] });
      expectKey = false;
    } else if (m[2] !== undefined) {
      if (out.length === 0) return `"${text}" is not a valid path: it must start with a name`;
      out.push(m[2] === '*' ? { each: true } : { index: Number(m[2]) });
      expectKey = false;
    } else {
      if (expectKey) return `"${text}" is not a valid path: empty name before "."`;
      expectKey = true;
    }
  }
  if (expectKey) return `"${text}" is not a valid path: it ends with "."`;
  return out;
}

/** Parses a path that was already validated by the schema. */
export function mustParsePath(text: string): Path {
  const p = parsePath(text);
  if (typeof p === 'string') throw new Error(p);
  return p;
}

export function hasEach(path: Path): boolean {
  return path.some((s) => 'each' in s);
}

type Json = unknown;
const isObject = (v: unknown): v is Record<string, Json> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The value at a path. With `[*]` the result is an array (one entry per element, nested `[*]`
 * flattened); missing data yields undefined (or is skipped inside `[*]`).
 */
export function getPath(value: Json, path: Path, from = 0): Json {
  let cur = value;
  for (let i = from; i < path.length; i++) {
    const seg = path[i]!;
    if ('key' in seg) {
      if (!isObject(cur)) return undefined;
      cur = Object.hasOwn(cur, seg.key) ? cur[seg.key] : undefined;
    } else if ('index' in seg) {
      if (!Array.isArray(cur)) return undefined;
      cur = cur[seg.index];
    } else {
      if (!Array.isArray(cur)) return undefined;
      const out: Json[] = [];
      const nested = hasEach(path.slice(i + 1));
      for (const el of cur) {
        const v = getPath(el, path, i + 1);
        if (v === undefined) continue;
        if (nested && Array.isArray(v)) out.push(...v);
        else out.push(v);
      }
      return out;
    }
  }
  return cur;
}

/**
 * Sets the value at a path, creating objects and arrays on the way. Through `[*]` it sets the
 * rest of the path inside every element that exists.
 */
export function setPath(target: Json, path: Path, value: Json, from = 0): void {
  let cur = target;
  for (let i = from; i < path.length; i++) {
    const seg = path[i]!;
    const last = i === path.length - 1;
    if ('each' in seg) {
      if (!Array.isArray(cur)) return;
      if (last) {
        for (let j = 0; j < cur.length; j++) cur[j] = value;
        return;
      }
      for (const el of cur) setPath(el, path, value, i + 1);
      return;
    }
    const container = cur as Record<string | number, Json>;
    const k = 'key' in seg ? seg.key : seg.index;
    if ('key' in seg ? !isObject(cur) : !Array.isArray(cur)) return;
    if (k === '__proto__') return;
    if (last) {
      container[k] = value;
      return;
    }
    let next = container[k];
    if (typeof next !== 'object' || next === null) {
      const nextSeg = path[i + 1]!;
      next = 'key' in nextSeg ? {} : [];
      container[k] = next;
    }
    cur = next;
  }
}

/** Removes the member at a path (through `[*]`, from every element). */
export function deletePath(target: Json, path: Path, from = 0): void {
  let cur = target;
  for (let i = from; i < path.length; i++) {
    const seg = path[i]!;
    const last = i === path.length - 1;
    if ('each' in seg) {
      if (!Array.isArray(cur)) return;
      if (last) {
        cur.length = 0;
        return;
      }
      for (const el of cur) deletePath(el, path, i + 1);
      return;
    }
    if ('key' in seg) {
      if (!isObject(cur)) return;
      if (last) {
        delete cur[seg.key];
        return;
      }
      cur = cur[seg.key];
    } else {
      if (!Array.isArray(cur)) return;
      if (last) {
        if (seg.index < cur.length) cur.splice(seg.index, 1);
        return;
      }
      cur = cur[seg.index];
    }
  }
}

/** A tree of allowed paths: a leaf (`true`) keeps the whole value below it. */
export type AllowTree = true | Map<string | number | '*', AllowTree>;

/** Builds the allow tree once, at load. */
export function allowTree(paths: readonly Path[]): AllowTree {
  const root: Map<string | number | '*', AllowTree> = new Map();
  for (const path of paths) {
    let node: Map<string | number | '*', AllowTree> = root;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      const k = 'key' in seg ? seg.key : 'index' in seg ? seg.index : '*';
      const last = i === path.length - 1;
      const existing = node.get(k);
      if (existing === true) break;
      if (last) {
        node.set(k, true);
        break;
      }
      if (existing) node = existing;
      else {
        const child = new Map();
        node.set(k, child);
        node = child;
      }
    }
  }
  return root;
}

/** A copy of `value` that keeps only what the allow tree names (missing members are skipped). */
export function project(value: Json, tree: AllowTree): Json {
  if (tree === true) return value;
  if (Array.isArray(value)) {
    const each = tree.get('*');
    if (each) return value.map((el) => project(el, each));
    const out: Json[] = [];
    for (const [k, sub] of tree)
      if (typeof k === 'number' && k < value.length) out.push(project(value[k], sub));
    return out;
  }
  if (!isObject(value)) return undefined;
  const out: Record<string, Json> = {};
  for (const [k, sub] of tree) {
    if (typeof k !== 'string' || k === '*' || !Object.hasOwn(value, k)) continue;
    const v = project(value[k], sub);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/**
 * A rename from one path to another. When both go through the same `[*]` prefix
 * (`items[*].productId` -> `items[*].id`) the rename happens inside each element.
 */
export interface Rename {
  /** The shared prefix ending in `[*]` (empty when the rename is not inside array elements). */
  prefix: Path;
  from: Path;
  to: Path;
}

/**
 * Compiles a rename, or explains why it cannot be: a `[*]` in the source must be matched by the
 * same prefix in the target, so each element keeps its own value.
 */
export function compileRename(fromText: string, toText: string): Rename | string {
  const from = parsePath(fromText);
  if (typeof from === 'string') return from;
  const to = parsePath(toText);
  if (typeof to === 'string') return to;
  const lastEach = from.findLastIndex((s) => 'each' in s);
  if (lastEach < 0) {
    if (hasEach(to))
      return `cannot rename "${fromText}" to "${toText}": the target has [*] but the source does not`;
    return { prefix: [], from, to };
  }
  const prefix = from.slice(0, lastEach + 1);
  const samePrefix =
    to.length > prefix.length && prefix.every((s, i) => JSON.stringify(s) === JSON.stringify(to[i]));
  if (!samePrefix || hasEach(to.slice(prefix.length))) {
    return `cannot rename "${fromText}" to "${toText}": inside arrays both paths must share the prefix up to the last [*] (like items[*].a -> items[*].b)`;
  }
  return { prefix, from: from.slice(prefix.length), to: to.slice(prefix.length) };
}

/** Applies a rename in place. */
export function applyRename(target: Json, r: Rename): void {
  if (r.prefix.length === 0) {
    renameIn(target, r.from, r.to);
    return;
  }
  // Walk to every element the prefix reaches, then rename inside it.
  const elements = getPath(target, r.prefix);
  if (Array.isArray(elements)) for (const el of elements) renameIn(el, r.from, r.to);
}

function renameIn(target: Json, from: Path, to: Path): void {
  const v = getPath(target, from);
  if (v === undefined) return;
  deletePath(target, from);
  setPath(target, to, v);
}

/** Cuts the array at a path (through `[*]`, in every element) to at most `max` entries. */
export function limitArray(target: Json, path: Path, max: number): void {
  // `images[*]` means the array itself.
  if (path.length > 1 && 'each' in path[path.length - 1]!) path = path.slice(0, -1);
  const lastEach = path.findLastIndex((s) => 'each' in s);
  if (lastEach >= 0 && lastEach < path.length - 1) {
    const elements = getPath(target, path.slice(0, lastEach + 1));
    if (Array.isArray(elements)) for (const el of elements) limitArray(el, path.slice(lastEach + 1), max);
    return;
  }
  const arr = getPath(target, path);
  if (Array.isArray(arr) && arr.length > max) arr.length = max;
}
