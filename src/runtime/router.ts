import type { IncomingHttpHeaders } from 'node:http';
import FindMyWay from 'find-my-way';

/**
 * The route table: method, host, path (find-my-way radix trees), then header and query
 * conditions and `priority` over a small candidate list compiled per path. Everything is
 * compiled once per configuration; a lookup allocates only find-my-way's params object.
 *
 * Precedence (documented in docs/gateway-routing.md):
 *   1. higher `priority` first (default 0);
 *   2. more specific host: exact, then `*.suffix` (longer suffix first), then any host;
 *   3. more specific path: static beats `:param` beats `*`; a longer static prefix first;
 *   4. more header and query conditions first, then a route limited to methods before one
 *      that is not;
 *   5. the order the routes are written in.
 * find-my-way picks the most specific path pattern; each pattern's candidate list also holds
 * the routes of every less specific pattern that covers it (`/api/*` covers `/api/:id`), so a
 * failed header condition falls back and a higher `priority` can override specificity.
 */

/** One condition on a header or query parameter. */
export type ValueCondition =
  | string
  | { exact: string }
  | { prefix: string }
  | { regex: string }
  | { present: boolean };

/** How a route is matched (the `match:` block of a route, already validated). */
export interface RouteMatch {
  /** Allowed methods (upper case); absent means any. GET also allows HEAD. */
  methods?: readonly string[];
  /** Exact host names or `*.example.com` wildcards; absent means any host. */
  hosts?: readonly string[];
  /** A find-my-way path: `/exact`, `/items/:id`, `/static/*`. */
  path?: string;
  /** Matches this path and everything below it (`/api` matches `/api` and `/api/x`). */
  pathPrefix?: string;
  headers?: Readonly<Record<string, ValueCondition>>;
  query?: Readonly<Record<string, ValueCondition>>;
  /** Higher wins over specificity; default 0. */
  priority?: number;
}

/** A route as the router sees it: a match and the value handed back on a hit. */
export interface RouteEntry<T> {
  match: RouteMatch;
  value: T;
}

export interface RouteHit<T> {
  value: T;
  params: Record<string, string>;
}

/** The compiled table. */
export interface RouteTable<T> {
  /** Finds the route for a request; `path` must be normalised, `query` is the raw query string. */
  match(
    method: string,
    host: string | undefined,
    path: string,
    headers: IncomingHttpHeaders,
    query: string,
  ): RouteHit<T> | undefined;
  /** Number of routes compiled. */
  readonly size: number;
}

interface Condition {
  source: 'header' | 'query';
  name: string;
  test: (value: string | undefined) => boolean;
}

interface Candidate<T> {
  value: T;
  order: number;
  priority: number;
  hostRank: number;
  methods: ReadonlySet<string> | undefined;
  conditions: readonly Condition[];
  needsQuery: boolean;
  pattern: string;
  /** Params for a path when this candidate won through another pattern's tree node. */
  paramsOf: (path: string) => Record<string, string>;
}

interface Store<T> {
  pattern: string;
  candidates: readonly Candidate<T>[];
  /** Whether any candidate needs the parsed query. */
  needsQuery: boolean;
  /** Whether every candidate is unconditional and from this pattern: the first always wins. */
  trivial: boolean;
}

/** Checks a path pattern is one the router supports; returns a message or undefined. */
export function checkPathPattern(pattern: string): string | undefined {
  if (!pattern.startsWith('/')) return `must start with "/"`;
  const segments = pattern.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '*') {
      if (i !== segments.length - 1) return `"*" may only be the last segment`;
      continue;
    }
    if (s.includes('*')) return `"*" must be a whole segment, like /static/*`;
    if (s.startsWith(':')) {
      if (!/^:[A-Za-z_][A-Za-z0-9_]*$/.test(s)) return `a parameter must be a whole segment, like /items/:id`;
      continue;
    }
    if (s.includes(':')) return `a parameter must be a whole segment, like /items/:id`;
    if (s === '.' || s === '..' || s.includes('%') || s.includes('?') || s.includes('#')) {
      return `must be a normalised path without ".", "..", "%", "?" or "#"`;
    }
  }
  return undefined;
}

/** Compiles routes into a table. Throws on an invalid path pattern (validate first). */
export function compileRoutes<T>(routes: readonly RouteEntry<T>[]): RouteTable<T> {
  const anyHost: Candidate<T>[] = [];
  const hosted: { candidate: Candidate<T>; hosts: string[] }[] = [];
  const exactHosts = new Set<string>();
  const wildcardSuffixes = new Set<string>();
  routes.forEach((r, order) => {
    const hosts = r.match.hosts?.map((h) => h.toLowerCase());
    for (const pattern of patternsOf(r.match)) {
      const candidate = candidateOf(r, order, pattern);
      if (hosts === undefined || hosts.length === 0) anyHost.push(candidate);
      else hosted.push({ candidate, hosts });
    }
    for (const h of hosts ?? []) {
      if (h.startsWith('*.')) wildcardSuffixes.add(h.slice(1));
      else exactHosts.add(h);
    }
  });

  // A host-specific bucket holds only routes for that host (exact ones, and the wildcards that
  // cover it); routes for any host live in one bucket of their own, consulted when the host
  // bucket has no match or when an any-host route has a higher priority.
  const hostBucket = (key: string): Bucket<T> | undefined => {
    const members: Candidate<T>[] = [];
    for (const { candidate, hosts } of hosted) {
      let rank: number | undefined;
      for (const h of hosts) {
        let r: number | undefined;
        if (h.startsWith('*.')) {
          if (key.endsWith(h.slice(1)) && key.length > h.length - 1) r = h.length;
        } else if (h === key) r = 100_000;
        if (r !== undefined && (rank === undefined || r > rank)) rank = r;
      }
      if (rank !== undefined) members.push({ ...candidate, hostRank: rank });
    }
    return members.length > 0 ? buildBucket(members) : undefined;
  };
  const any = anyHost.length > 0 ? buildBucket(anyHost) : undefined;
  const anyMaxPriority = anyHost.reduce((m, c) => Math.max(m, c.priority), Number.NEGATIVE_INFINITY);
  const exact = new Map<string, Bucket<T> | undefined>();
  for (const h of exactHosts) exact.set(h, hostBucket(h));
  // A wildcard's key is its suffix with a placeholder label, so `*.a.com` also collects `*.com`.
  const wildcards = [...wildcardSuffixes]
    .sort((a, b) => b.length - a.length)
    .map((suffix) => ({ suffix, bucket: hostBucket(`x${suffix}`) }));
  const hostAware = exact.size > 0 || wildcards.length > 0;

  // Host headers repeat, so the bucket for each raw value is remembered (bounded).
  const hostCache = new Map<string, Bucket<T> | null>();
  const selectHostBucket = (rawHost: string): Bucket<T> | null => {
    let bucket = hostCache.get(rawHost);
    if (bucket !== undefined) return bucket;
    const host = hostOnly(rawHost);
    bucket = exact.get(host) ?? null;
    if (bucket === null && !exact.has(host)) {
      for (const w of wildcards) {
        if (host.endsWith(w.suffix) && host.length > w.suffix.length) {
          bucket = w.bucket ?? null;
          break;
        }
      }
    }
    if (hostCache.size >= 4096) hostCache.clear();
    hostCache.set(rawHost, bucket);
    return bucket;
  };

  return {
    size: routes.length,
    match(method, host, path, headers, query) {
      let hit: Found<T> | undefined;
      if (hostAware && host !== undefined) {
        const bucket = selectHostBucket(host);
        hit = bucket === null ? undefined : lookup(bucket, method, path, headers, query);
        if (hit !== undefined && any !== undefined && hit.priority < anyMaxPriority) {
          const other = lookup(any, method, path, headers, query);
          if (other !== undefined && other.priority > hit.priority) hit = other;
        }
      }
      if (hit === undefined && any !== undefined) hit = lookup(any, method, path, headers, query);
      return hit;
    },
  };
}

interface Bucket<T> {
  router: FindMyWay.Instance<FindMyWay.HTTPVersion.V1>;
  /** Marker so the type parameter is used. */
  readonly _value?: T;
}

/** A lookup's result: the route, its params, and its priority (to compare host buckets). */
class Found<T> implements RouteHit<T> {
  // Private: a hit shows (and compares as) just `{ value, params }`.
  readonly #priority: number;

  constructor(
    readonly value: T,
    readonly params: Record<string, string>,
    priority: number,
  ) {
    this.#priority = priority;
  }

  get priority(): number {
    return this.#priority;
  }
}

function lookup<T>(
  bucket: Bucket<T>,
  method: string,
  path: string,
  headers: IncomingHttpHeaders,
  query: string,
): Found<T> | undefined {
  // Every pattern is registered under one method: methods are a condition like any other, so
  // a route limited to GET does not hide a less specific route that takes POST.
  const found = bucket.router.find('GET', path);
  if (found === null) return undefined;
  const store = found.store as Store<T>;
  if (store.trivial) {
    const c = store.candidates[0]!;
    return new Found(c.value, found.params as Record<string, string>, c.priority);
  }
  const parsedQuery = store.needsQuery && query !== '' ? new URLSearchParams(query) : undefined;
  for (const c of store.candidates) {
    if (c.methods !== undefined && !c.methods.has(method)) continue;
    if (!conditionsHold(c, headers, parsedQuery)) continue;
    const params = c.pattern === store.pattern ? (found.params as Record<string, string>) : c.paramsOf(path);
    return new Found(c.value, params, c.priority);
  }
  return undefined;
}

/** `Host` without port or trailing dot, lower case. */
export function hostOnly(raw: string): string {
  let host = raw;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const end = host.indexOf(']');
    host = end === -1 ? host : host.slice(0, end + 1);
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host.toLowerCase();
}

function conditionsHold<T>(
  c: Candidate<T>,
  headers: IncomingHttpHeaders,
  query: URLSearchParams | undefined,
): boolean {
  for (const cond of c.conditions) {
    let value: string | undefined;
    if (cond.source === 'header') {
      const v = headers[cond.name];
      value = Array.isArray(v) ? v.join(', ') : v;
    } else {
      value = query?.get(cond.name) ?? undefined;
    }
    if (!cond.test(value)) return false;
  }
  return true;
}

function patternsOf(match: RouteMatch): string[] {
  if (match.pathPrefix !== undefined) {
    const base = match.pathPrefix.endsWith('/') ? match.pathPrefix.slice(0, -1) : match.pathPrefix;
    return base === '' ? ['/', '/*'] : [base, `${base}/*`];
  }
  return [match.path ?? '/*'];
}

function conditionOf(source: 'header' | 'query', name: string, c: ValueCondition): Condition {
  const key = source === 'header' ? name.toLowerCase() : name;
  let test: (v: string | undefined) => boolean;
  if (typeof c === 'string' || 'exact' in c) {
    const want = typeof c === 'string' ? c : c.exact;
    test = (v) => v === want;
  } else if ('prefix' in c) {
    const want = c.prefix;
    test = (v) => v?.startsWith(want) === true;
  } else if ('regex' in c) {
    const re = new RegExp(c.regex);
    test = (v) => v !== undefined && re.test(v);
  } else {
    const want = c.present;
    test = (v) => (v !== undefined) === want;
  }
  return { source, name: key, test };
}

function candidateOf<T>(route: RouteEntry<T>, order: number, pattern: string): Candidate<T> {
  const m = route.match;
  const conditions = [
    ...Object.entries(m.headers ?? {}).map(([n, c]) => conditionOf('header', n, c)),
    ...Object.entries(m.query ?? {}).map(([n, c]) => conditionOf('query', n, c)),
  ];
  let methods: Set<string> | undefined;
  if (m.methods !== undefined && m.methods.length > 0) {
    methods = new Set(m.methods.map((x) => x.toUpperCase()));
    if (methods.has('GET')) methods.add('HEAD');
  }
  return {
    value: route.value,
    order,
    priority: m.priority ?? 0,
    hostRank: 0,
    methods,
    conditions,
    needsQuery: conditions.some((c) => c.source === 'query'),
    pattern,
    paramsOf: paramsExtractor(pattern),
  };
}

function paramsExtractor(pattern: string): (path: string) => Record<string, string> {
  const names: string[] = [];
  const source = pattern
    .split('/')
    .map((s) => {
      if (s === '*') {
        names.push('*');
        return '(.*)';
      }
      if (s.startsWith(':')) {
        names.push(s.slice(1));
        return '([^/]+)';
      }
      return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  if (names.length === 0) return () => ({});
  const re = new RegExp(`^${source}$`);
  return (path) => {
    const m = re.exec(path);
    const params: Record<string, string> = {};
    if (m === null) return params;
    names.forEach((n, i) => {
      const raw = m[i + 1] ?? '';
      try {
        params[n] = decodeURIComponent(raw);
      } catch {
        params[n] = raw;
      }
    });
    return params;
  };
}

/** Whether pattern `outer` matches every path that pattern `inner` matches (both split on `/`). */
function covers(o: readonly string[], n: readonly string[]): boolean {
  for (let i = 0; i < o.length; i++) {
    const os = o[i]!;
    const ns = n[i];
    if (os === '*' && i === o.length - 1) return ns !== undefined;
    if (ns === undefined) return false;
    if (os.startsWith(':')) {
      if (ns === '*' || ns === '') return false;
      continue;
    }
    if (os !== ns) return false;
  }
  return o.length === n.length;
}

function staticPrefixLength(pattern: string): number {
  const i = pattern.search(/[:*]/);
  return i === -1 ? pattern.length + 1_000_000 : i;
}

function compareCandidates<T>(a: Candidate<T>, b: Candidate<T>): number {
  return (
    b.priority - a.priority ||
    b.hostRank - a.hostRank ||
    staticPrefixLength(b.pattern) - staticPrefixLength(a.pattern) ||
    Number(a.pattern.endsWith('*')) - Number(b.pattern.endsWith('*')) ||
    b.pattern.length - a.pattern.length ||
    b.conditions.length - a.conditions.length ||
    Number(b.methods !== undefined) - Number(a.methods !== undefined) ||
    a.order - b.order
  );
}

function buildBucket<T>(members: Candidate<T>[]): Bucket<T> {
  const router = FindMyWay({ caseSensitive: true, ignoreTrailingSlash: false, maxParamLength: 2048 });
  const byPattern = new Map<string, Candidate<T>[]>();
  for (const m of members) {
    const list = byPattern.get(m.pattern);
    if (list) list.push(m);
    else byPattern.set(m.pattern, [m]);
  }
  // Only a pattern with a `:param` or `*` can cover another one. Index those by their first
  // segment so each pattern is compared with a handful, not with every other pattern.
  const segmentsOf = new Map<string, string[]>();
  for (const p of byPattern.keys()) segmentsOf.set(p, p.split('/'));
  const dynamicByFirst = new Map<string, string[]>();
  const dynamicAnyFirst: string[] = [];
  for (const [p, segs] of segmentsOf) {
    if (!/[:*]/.test(p)) continue;
    const first = segs[1]!;
    if (first === '*' || first.startsWith(':')) dynamicAnyFirst.push(p);
    else {
      const list = dynamicByFirst.get(first);
      if (list) list.push(p);
      else dynamicByFirst.set(first, [p]);
    }
  }
  for (const [pattern, own] of byPattern) {
    const segs = segmentsOf.get(pattern)!;
    const candidates = [...own];
    for (const other of [...(dynamicByFirst.get(segs[1]!) ?? []), ...dynamicAnyFirst]) {
      if (other !== pattern && covers(segmentsOf.get(other)!, segs))
        candidates.push(...byPattern.get(other)!);
    }
    candidates.sort(compareCandidates);
    const first = candidates[0]!;
    const store: Store<T> = {
      pattern,
      candidates,
      needsQuery: candidates.some((c) => c.needsQuery),
      trivial: first.pattern === pattern && first.conditions.length === 0 && first.methods === undefined,
    };
    router.on('GET', pattern, noop, store);
  }
  // No router.compile(): over 1,000 routes its generated code measured several times slower here.
  return { router };
}

function noop(): void {}
