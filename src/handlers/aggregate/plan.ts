import { didYouMean } from '../../core/suggest.js';
import {
  type AllowTree,
  allowTree,
  compileRename,
  type Path,
  parsePath,
  type Rename,
} from '../../shape/paths.js';
import { compileTemplate, RESERVED_PART_NAMES, type Template } from '../../shape/template.js';
import type { AggregateOptions } from './schema.js';

/**
 * Compiles `aggregate:` options into an execution plan: templates parsed, the dependency graph
 * checked (unknown parts, cycles, unsafe steps) and ordered. The schema runs this to report
 * problems with their path (so the loader shows file:line:col); `create()` runs it to get the plan.
 */

/** Allow/deny/rename/limit steps, compiled. */
export interface Shaping {
  allow: AllowTree | undefined;
  deny: Path[];
  renames: Rename[];
  limits: { path: Path; max: number }[];
}

export interface PartPlan {
  name: string;
  index: number;
  service: string;
  method: string;
  unsafe: boolean;
  path: Template;
  query: [string, Template][];
  passQuery: boolean;
  headers: [string, Template][];
  forwardHeaders: string[];
  forwardBody: boolean;
  /** Indexes of parts that must finish first (data dependencies, or every safe part for the unsafe step). */
  waitsFor: number[];
  /** Indexes of parts whose answers this part's templates or forEach read. */
  uses: number[];
  forEach: { part: string; path: Path } | undefined;
  timeoutMs: number;
  optional: boolean;
  internal: boolean;
  maxFanOut: number;
  concurrency: number;
  cache: { ttlMs: number; store: string; maxSize: number } | undefined;
  maxBodySize: number;
  target: Path | undefined;
  shaping: Shaping;
  /** Where the result goes: its members at the top, or under a dot path. */
  placement: { merge: true } | { merge: false; at: Path };
  usesQuery: boolean;
}

export interface Plan {
  parts: PartPlan[];
  shape: Shaping;
  usesQuery: boolean;
  forwardsBody: boolean;
}

export interface PlanIssue {
  path: (string | number)[];
  message: string;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export function compilePlan(options: AggregateOptions): { plan: Plan; issues: PlanIssue[] } {
  const issues: PlanIssue[] = [];
  const names = Object.keys(options.parts);
  const index = new Map(names.map((n, i) => [n, i]));
  const parts: PartPlan[] = [];
  const deps: Set<string>[] = [];

  if (names.length === 0) issues.push({ path: ['parts'], message: 'needs at least one part' });

  names.forEach((name, i) => {
    const o = options.parts[name]!;
    const at = (...p: (string | number)[]) => ['parts', name, ...p];
    const add = (p: (string | number)[], message: string) => issues.push({ path: p, message });
    if (!NAME_RE.test(name)) add(at(), `part name "${name}" must be letters, digits, "_" or "-"`);
    if (RESERVED_PART_NAMES.has(name)) {
      add(at(), `"${name}" cannot name a part: templates use {${name}.…} for something else`);
    }
    const uses = new Set<string>();
    const template = (text: string, p: (string | number)[]): Template => {
      const t = compileTemplate(text);
      if (typeof t === 'string') {
        add(p, t);
        return { text, pieces: [], parts: [], usesItem: false, usesQuery: false };
      }
      for (const piece of t.pieces) {
        if (typeof piece === 'string' || piece.source.kind !== 'part') continue;
        const ref = piece.source.part;
        if (!index.has(ref)) {
          add(p, `{${piece.text}}: unknown part "${ref}"${didYouMean(ref, names)}`);
        } else uses.add(ref);
      }
      if (t.usesItem && o.forEach === undefined) add(p, `{item} is only available in a part with forEach`);
      return t;
    };
    const path = template(o.path, at('path'));
    const query = Object.entries(o.query ?? {}).map(([k, v]): [string, Template] => [
      k,
      template(v, at('query', k)),
    ]);
    const headers = Object.entries(o.headers ?? {}).map(([k, v]): [string, Template] => [
      k.toLowerCase(),
      template(v, at('headers', k)),
    ]);

    let forEach: PartPlan['forEach'];
    if (o.forEach !== undefined) {
      const p = parsePath(o.forEach);
      if (typeof p === 'string') add(at('forEach'), p);
      else {
        const head = p[0]!;
        const ref = 'key' in head ? head.key : '';
        if (!index.has(ref)) {
          add(
            at('forEach'),
            `unknown part "${ref}"${didYouMean(ref, names)}: forEach reads a list from another part`,
          );
        } else {
          uses.add(ref);
          forEach = { part: ref, path: p.slice(1) };
        }
      }
    }

    const unsafe = !SAFE.has(o.method);
    if (unsafe && !options.allowUnsafe) {
      add(
        at('method'),
        `${o.method} is not a safe method: set allowUnsafe: true on the aggregate to allow one unsafe last step`,
      );
    }
    if (unsafe && o.forEach !== undefined) add(at('forEach'), `an unsafe ${o.method} part cannot fan out`);
    if (o.forwardBody && !unsafe)
      add(at('forwardBody'), `only an unsafe part (POST, PUT, PATCH, DELETE) sends a body`);
    if (o.merge && o.group !== undefined) add(at('group'), 'choose merge or group, not both');

    const dotPath = (text: string, p: (string | number)[]): Path | undefined => {
      const parsed = parsePath(text);
      if (typeof parsed === 'string') {
        add(p, parsed);
        return undefined;
      }
      return parsed;
    };
    const target = o.target === undefined ? undefined : dotPath(o.target, at('target'));
    const groupAt = dotPath(o.group ?? name, at(o.group === undefined ? 'parts' : 'group')) ?? [
      { key: name },
    ];

    deps.push(uses);
    parts.push({
      name,
      index: i,
      service: o.service,
      method: o.method,
      unsafe,
      path,
      query,
      passQuery: o.passQuery,
      headers,
      forwardHeaders: o.forwardHeaders.map((h) => h.toLowerCase()),
      forwardBody: o.forwardBody,
      waitsFor: [],
      uses: [],
      forEach,
      timeoutMs: o.timeout ?? options.partTimeout,
      optional: o.optional,
      internal: o.internal,
      maxFanOut: o.maxFanOut ?? options.maxFanOut,
      concurrency: o.concurrency ?? options.concurrency,
      cache:
        o.cache && !unsafe
          ? { ttlMs: o.cache.ttl, store: o.cache.store, maxSize: o.cache.maxSize }
          : undefined,
      maxBodySize: o.maxBodySize,
      target,
      shaping: compileShaping(o, at(), issues),
      placement: o.merge ? { merge: true } : { merge: false, at: groupAt },
      usesQuery:
        o.passQuery ||
        [path, ...query.map((q) => q[1]), ...headers.map((h) => h[1])].some((t) => t.usesQuery),
    });
    if (o.cache && unsafe) add(at('cache'), `an unsafe ${o.method} part is never cached`);
  });

  // Self-references and cycles: a depth-first walk that reports each cycle once, at its first part.
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const reported = new Set<string>();
  const visit = (name: string): void => {
    state.set(name, 'visiting');
    stack.push(name);
    for (const dep of deps[index.get(name)!]!) {
      const s = state.get(dep);
      if (s === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(dep)), dep];
        const first = cycle[0]!;
        if (!reported.has(first)) {
          reported.add(first);
          issues.push({
            path: ['parts', first],
            message:
              cycle.length === 2
                ? `part "${first}" depends on itself`
                : `parts form a cycle: ${cycle.join(' -> ')}: a part can only use parts that do not use it`,
          });
        }
      } else if (s === undefined) visit(dep);
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const n of names) if (!state.has(n)) visit(n);

  // The unsafe step: at most one, nothing may use its answer, and it runs after every other part.
  const unsafeParts = parts.filter((p) => p.unsafe);
  if (unsafeParts.length > 1) {
    issues.push({
      path: ['parts', unsafeParts[1]!.name, 'method'],
      message: `only one unsafe part is allowed (also "${unsafeParts[0]!.name}"): it must be the last step`,
    });
  }
  for (const u of unsafeParts) {
    names.forEach((n, i) => {
      if (deps[i]!.has(u.name)) {
        issues.push({
          path: ['parts', n],
          message: `uses "${u.name}", but an unsafe ${u.method} call can only be the last step: nothing may depend on it`,
        });
      }
    });
  }
  for (const p of parts) {
    p.uses = [...deps[p.index]!].map((d) => index.get(d)!);
    p.waitsFor = p.unsafe ? parts.filter((q) => !q.unsafe).map((q) => q.index) : p.uses;
  }

  const plan: Plan = {
    parts,
    shape: compileShaping(options.shape ?? {}, ['shape'], issues),
    usesQuery: parts.some((p) => p.usesQuery),
    forwardsBody: parts.some((p) => p.forwardBody),
  };
  return { plan, issues };
}

function compileShaping(
  o: { allow?: string[]; deny?: string[]; rename?: Record<string, string>; limit?: Record<string, number> },
  at: (string | number)[],
  issues: PlanIssue[],
): Shaping {
  const paths = (list: string[] | undefined, key: string): Path[] =>
    (list ?? []).flatMap((text, i) => {
      const p = parsePath(text);
      if (typeof p === 'string') {
        issues.push({ path: [...at, key, i], message: p });
        return [];
      }
      return [p];
    });
  const allow = o.allow === undefined ? undefined : allowTree(paths(o.allow, 'allow'));
  const deny = paths(o.deny, 'deny');
  const renames = Object.entries(o.rename ?? {}).flatMap(([from, to]) => {
    const r = compileRename(from, to);
    if (typeof r === 'string') {
      issues.push({ path: [...at, 'rename', from], message: r });
      return [];
    }
    return [r];
  });
  const limits = Object.entries(o.limit ?? {}).flatMap(([text, max]) => {
    const p = parsePath(text);
    if (typeof p === 'string') {
      issues.push({ path: [...at, 'limit', text], message: p });
      return [];
    }
    return [{ path: p, max }];
  });
  return { allow, deny, renames, limits };
}
