import type { IncomingHttpHeaders } from 'node:http';
import FindMyWay, { type HTTPMethod } from 'find-my-way';

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

const STANDARD_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'];

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

type Bucket = FindMyWay.Instance<FindMyWay.HTTPVersion.V1>;

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
  const all: { candidate: Candidate<T>; hosts: readonly string[] | undefined }[] = [];
  routes.forEach((r, order) => {
    for (const pattern of patternsOf(r.match)) {
      all.push({ candidate: candidateOf(r, order, pattern), hosts: r.match.hosts });
    }
  });

  const exactHosts = new Set<string>();
  const wildcardSuffixes = new Set<string>();
  for (const { hosts } of all) {
    for (const h of hosts ?? []) {
      if (h.startsWith('*.')) wildcardSuffixes.add(h.slice(1).toLowerCase());
      else exactHosts.add(h.toLowerCase());
    }
  }
  const hostMatches = (routeHost: string, host: string) =>
    routeHost.startsWith('*.')
      ? host.endsWith(routeHost.slice(1)) && host.length > routeHost.length - 1
      : routeHost === host;
  // A host key is either a concrete host or a `.suffix` standing for its wildcard.
  const rankFor = (hosts: readonly string[] | undefined, key: string | undefined): number | undefined => {
    if (hosts === undefined || hosts.length === 0) return 0;
    if (key === undefined) return undefined;
    let best: number | undefined;
    for (const raw of hosts) {
      const h = raw.toLowerCase();
      let rank: number | undefined;
      if (key.startsWith('.')) {
        if (h.startsWith('*.') && key.endsWith(h.slice(1))) rank = h.length;
      } else if (h === key) rank = 100_000;
      else if (hostMatches(h, key)) rank = h.length;
      if (rank !== undefined && (best === undefined || rank > best)) best = rank;
    }
    return best;
  };
  const bucketFor = (key: string | undefined): Bucket | undefined => {
    const members: Candidate<T>[] = [];
    for (const { candidate, hosts } of all) {
      const rank = rankFor(hosts, key);
      if (rank !== undefined) members.push({ ...candidate, hostRank: rank });
    }
    return members.length > 0 ? buildBucket(members) : undefined;
  };

  const anyHost = bucketFor(undefined);
  const exact = new Map<string, Bucket | undefined>();
  for (const h of exactHosts) exact.set(h, bucketFor(h));
  const wildcards = [...wildcardSuffixes]
    .sort((a, b) => b.length - a.length)
    .map((suffix) => ({ suffix, bucket: bucketFor(suffix) }));
  const hostAware = exact.size > 0 || wildcards.length > 0;

  const selectBucket = (rawHost: string | undefined): Bucket | undefined => {
    if (!hostAware || rawHost === undefined) return anyHost;
    const host = hostOnly(rawHost);
    const e = exact.get(host);
    if (e !== undefined) return e;
    for (const w of wildcards) {
      if (host.endsWith(w.suffix) && host.length > w.suffix.length) return w.bucket;
    }
    return anyHost;
  };

  return {
    size: routes.length,
    match(method, host, path, headers, query) {
      const bucket = selectBucket(host);
      if (bucket === undefined) return undefined;
      const found = bucket.find(method as HTTPMethod, path);
      if (found === null) return undefined;
      const store = found.store as Store<T>;
      const params = found.params as Record<string, string>;
      if (store.trivial) return { value: store.candidates[0]!.value, params };
      const parsedQuery = store.needsQuery && query !== '' ? new URLSearchParams(query) : undefined;
      for (const c of store.candidates) {
        if (c.methods !== undefined && !c.methods.has(method)) continue;
        if (!conditionsHold(c, headers, parsedQuery)) continue;
        return { value: c.value, params: c.pattern === store.pattern ? params : c.paramsOf(path) };
      }
      return undefined;
    },
  };
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

/** Whether pattern `outer` matches every path that pattern `inner` matches. */
function covers(outer: string, inner: string): boolean {
  if (outer === inner) return true;
  const o = outer.split('/');
  const n = inner.split('/');
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

function buildBucket<T>(members: Candidate<T>[]): Bucket {
  const router = FindMyWay({ caseSensitive: true, ignoreTrailingSlash: false, maxParamLength: 2048 });
  const methodsUsed = new Set(STANDARD_METHODS);
  for (const m of members) for (const x of m.methods ?? []) methodsUsed.add(x);
  const patterns = [...new Set(members.map((m) => m.pattern))];
  for (const pattern of patterns) {
    const candidates = members.filter((m) => covers(m.pattern, pattern)).sort(compareCandidates);
    for (const method of methodsUsed) {
      const forMethod = candidates.filter((c) => c.methods === undefined || c.methods.has(method));
      if (forMethod.length === 0 || !forMethod.some((c) => c.pattern === pattern)) continue;
      const first = forMethod[0]!;
      const store: Store<T> = {
        pattern,
        candidates: forMethod,
        needsQuery: forMethod.some((c) => c.needsQuery),
        trivial: first.pattern === pattern && first.conditions.length === 0,
      };
      router.on(method as HTTPMethod, pattern, noop, store);
    }
  }
  return router;
}

function noop(): void {}
