import { randomUUID } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import { z } from 'zod';
import { duration, size } from '../../core/units.js';
import { type ResponseSink, TrellisResponse } from '../../http/response.js';
import type { Handler, RequestContext } from '../../http/types.js';
import { isStoreSkipped, storeBreaker, storeBreakerOptions } from '../_support/breaker.js';
import { sharedRedis } from '../_support/redis.js';
import { refuse } from '../_support/refuse.js';
import { defineMiddleware } from '../types.js';
import { backgroundContext } from './capture.js';
import {
  type Directives,
  effectiveCacheControl,
  freshnessLifetime,
  type Heuristic,
  initialAge,
  parseCacheControl,
  parseHttpDate,
  parseVary,
  requestAllowance,
  seconds,
  storable,
} from './policy.js';
import { servePart } from './range.js';
import {
  type CacheEntry,
  type CacheStore,
  GuardedCacheStore,
  MemoryCacheStore,
  RedisCacheStore,
  TEXT_BODY_MAX,
  type UrlRecord,
} from './store.js';

const options = z.strictObject({
  /** `memory` (this process), a name from `stores:` (a redis:// one), or a `redis://` URL (shared by every gateway). */
  store: z.string().min(1).default('memory'),
  /** memory: the most bytes held; least recently used entries go first. */
  maxSize: size().prefault('64mb'),
  /** Larger responses are passed through, never stored. */
  maxEntrySize: size().prefault('1mb'),
  /** How long a stale entry with a validator (ETag/Last-Modified) is kept for revalidation. */
  keepStale: duration().prefault('1h'),
  /** stale-if-error applied when the response gives none (0: only the response's own). */
  staleIfError: duration().prefault('0s'),
  /** Store responses to requests with Authorization even without public/s-maxage (off: RFC 9111 3.5). */
  cacheAuthorized: z.boolean().default(false),
  /** Store responses that set cookies (off: one client's cookie would be replayed to others). */
  cacheSetCookie: z.boolean().default(false),
  /** Redis: how long one store operation may take before the cache is skipped for that request. */
  storeTimeout: duration().prefault('250ms'),
  /** Redis: the circuit breaker in front of the store: `{ failures: 5, halfOpenAfter: 5s }`. */
  storeBreaker: storeBreakerOptions(),
  /**
   * Longest heuristic lifetime (RFC 9111 4.2.2) of a response with Last-Modified and no explicit
   * one: 10% of its age since Last-Modified, up to this; 0s turns heuristics off.
   */
  heuristicMaxAge: duration().prefault('1h'),
  /** Honour the request's Cache-Control (max-age, max-stale, min-fresh, no-cache, only-if-cached). */
  requestCacheControl: z.boolean().default(true),
});

type Options = z.output<typeof options>;

/** Headers never stored: hop-by-hop, per-exchange ones, and the ones the cache computes. */
const NOT_STORED = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'age',
  'x-request-id',
  'cache-status',
]);

function header(v: string | string[] | number | undefined): string | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(', ') : String(v);
}

/**
 * The variant key: the URL's generation, the URL, and the values of the Vary'd request headers —
 * and only those, so other headers can neither split nor select an entry.
 */
function variantKey(primary: string, record: UrlRecord, ctx: RequestContext): string {
  // One string built in place: this runs on every hit, most URLs vary on nothing.
  let key = `${record.gen}\n${primary}`;
  for (const n of record.vary)
    key += `\n${n}=${(header(ctx.req.headers[n]) ?? '').trim().replace(/\s+/g, ' ')}`;
  return key;
}

/**
 * Each stored entry's head as a flat `[name, value, …]` list, built on its first hit and kept
 * beside it (not in it: Redis entries are JSON, and a fresh object per read simply rebuilds it).
 * node writes a flat list without the per-key object walk, and outer middlewares that edit the
 * head (cors, compress) take a flat list as it is.
 */
const flatHeads = new WeakMap<CacheEntry, FlatHead>();

interface FlatHead {
  list: readonly string[];
  /** A name given more than once (Link, Set-Cookie when stored). */
  repeated: boolean;
  /**
   * A small body as a latin1 string (lossless for any bytes): node then sends head and body as
   * one string in one write, where a Buffer body costs a writev of two chunks.
   */
  text?: string;
}

/** The headers of `h` after those of `kept` that `h` does not name (names in `h` win). */
function withKept(h: HeadOut, kept: OutgoingHttpHeaders): OutgoingHttpHeaders | string[] {
  const names = Object.keys(kept);
  if (names.length === 0) return h as OutgoingHttpHeaders | string[];
  if (!Array.isArray(h)) return { ...kept, ...h };
  const own = new Set<string>();
  for (let i = 0; i < h.length; i += 2) own.add(h[i]!.toLowerCase());
  const out: string[] = [];
  for (const k of names) {
    if (own.has(k)) continue;
    const v = kept[k]!;
    if (Array.isArray(v)) for (const x of v) out.push(k, x);
    else out.push(k, String(v));
  }
  return out.concat(h);
}

function flatHead(e: CacheEntry): FlatHead {
  let flat = flatHeads.get(e);
  if (flat === undefined) {
    const list: string[] = [];
    let repeated = false;
    for (const k in e.headers) {
      const v = e.headers[k]!;
      if (!Array.isArray(v)) list.push(k, v);
      else {
        repeated ||= v.length > 1;
        for (const x of v) list.push(k, x);
      }
    }
    flat = { list, repeated, text: e.body.length <= TEXT_BODY_MAX ? e.body.toString('latin1') : undefined };
    flatHeads.set(e, flat);
  }
  return flat;
}

/** What a cached answer's head is written as: a header object (304s) or a flat list (hits). */
type HeadOut = Record<string, string | string[] | number> | string[];

/**
 * Safe methods (RFC 9110 9.2.1). Every other one, extension methods included, may change what
 * a URL answers: its success invalidates the URL (RFC 9111 4.4).
 */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

function ageOf(e: CacheEntry, now: number): number {
  return e.initialAge + Math.max(0, (now - e.storedAt) / 1000);
}

/** Weak comparison of entity tags (RFC 9110 8.8.3.2), for If-None-Match. */
function etagMatches(ifNoneMatch: string, etag: string | undefined): boolean {
  if (ifNoneMatch.trim() === '*') return etag !== undefined;
  if (etag === undefined) return false;
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return ifNoneMatch.split(',').some((t) => bare(t) === bare(etag));
}

/**
 * The status and headers as the handler wrote them, taken when the head passes the cache:
 * middlewares outside the cache (compress) change them afterwards, for this client only.
 */
interface Head {
  statusCode: number;
  headers: OutgoingHttpHeaders;
}

/** What RFC 9111 says about storing one response, decided from its head. */
interface StorePlan {
  raw: Record<string, string | string[]>;
  cc: Directives;
  vary: string[];
  lifetime: number;
  /** Why it is not stored (the Cache-Status detail), or undefined when it is. */
  notStored?: string;
}

/** Decides from the head whether a response is stored, and with what lifetime. */
function planStore(
  head: Head,
  preset: ReadonlySet<string>,
  ctx: RequestContext,
  o: Options,
  now: number,
): StorePlan {
  const raw: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(head.headers)) {
    if (v === undefined || preset.has(k) || NOT_STORED.has(k)) continue;
    if (k === 'set-cookie' && !o.cacheSetCookie) continue;
    raw[k] = Array.isArray(v) ? v : String(v);
  }
  // The stored Date is the origin's (kept on hits, RFC 9111 4); one without gets its arrival time.
  if (raw.date === undefined || Number.isNaN(parseHttpDate(header(raw.date))))
    raw.date = new Date(now).toUTCString();
  const cc = effectiveCacheControl(raw);
  const vary = parseVary(raw.vary);
  const lifetime = freshnessLifetime(cc, raw, now, head.statusCode, heuristicOf(o));
  const decision = storable({
    status: head.statusCode,
    method: ctx.req.method ?? 'GET',
    responseCc: cc,
    requestCc: parseCacheControl(ctx.req.headers['cache-control']),
    hasAuthorization: ctx.req.headers.authorization !== undefined,
    hasSetCookie: head.headers['set-cookie'] !== undefined,
    vary,
    lifetime,
    hasValidator: raw.etag !== undefined || raw['last-modified'] !== undefined,
    cacheAuthorized: o.cacheAuthorized,
    cacheSetCookie: o.cacheSetCookie,
  });
  const notStored = !decision.store ? decision.reason : head.statusCode === 304 ? 'status' : undefined;
  return { raw, cc, vary: vary === '*' ? [] : vary, lifetime, ...(notStored ? { notStored } : {}) };
}

function heuristicOf(o: Options): Heuristic {
  return { fraction: 0.1, max: Math.floor(o.heuristicMaxAge / 1000) };
}

/** Builds the entry a storable plan describes, from the complete body. */
function toEntry(
  plan: StorePlan,
  head: Head,
  body: Buffer,
  o: Options,
  now: number,
  requestedAt: number,
): CacheEntry {
  plan.raw['content-length'] = String(body.length);
  return {
    status: head.statusCode,
    headers: plan.raw,
    body,
    storedAt: now,
    initialAge: initialAge({ ...plan.raw, age: head.headers.age }, now, requestedAt),
    lifetime: plan.lifetime,
    ...staleWindows(plan.cc, o),
  };
}

function staleWindows(cc: Directives, o: Options) {
  return {
    swr: seconds(cc, 'stale-while-revalidate') ?? 0,
    sie: seconds(cc, 'stale-if-error') ?? Math.floor(o.staleIfError / 1000),
    mustRevalidate: cc.has('must-revalidate') || cc.has('proxy-revalidate') || cc.has('no-cache'),
  };
}

/** Applies a 304's headers to a stored entry and makes it fresh again (RFC 9111 4.3.4). */
function freshen(entry: CacheEntry, head: Head, o: Options): CacheEntry {
  const headers = { ...entry.headers };
  for (const [k, v] of Object.entries(head.headers)) {
    if (v === undefined || NOT_STORED.has(k) || k === 'content-length') continue;
    if (k === 'set-cookie' && !o.cacheSetCookie) continue;
    headers[k] = Array.isArray(v) ? v : String(v);
  }
  const cc = effectiveCacheControl(headers);
  const now = Date.now();
  return {
    ...entry,
    headers,
    storedAt: now,
    initialAge: initialAge({ ...headers, age: head.headers.age }, now),
    lifetime: freshnessLifetime(cc, headers, now, entry.status, heuristicOf(o)),
    ...staleWindows(cc, o),
  };
}

/** cache: an RFC 9111 shared cache in front of the handler, with request coalescing. */
export const cacheMiddleware = defineMiddleware({
  type: 'cache',
  options,
  async create(o, deps) {
    // The runtime's connection for the store: opened once per process, closed by the runtime;
    // the breaker in front of it is this middleware's own.
    const client = await sharedRedis(o.store, deps.shared, o.storeTimeout);
    const breaker = client ? storeBreaker(o.storeBreaker, deps, 'answering without the cache') : undefined;
    const store: CacheStore =
      client && breaker
        ? new GuardedCacheStore(new RedisCacheStore(client, `trellis:cache:${deps.name}:`), breaker)
        : new MemoryCacheStore(o.maxSize);
    /** Store failures are logged; calls the open breaker skipped are not (it logged once). */
    const storeFailed = (err: unknown, msg: string) => {
      if (isStoreSkipped(err)) deps.logger.debug({ middleware: deps.name }, msg);
      else deps.logger.warn({ err, middleware: deps.name }, msg);
    };
    /** Fills in progress per variant key: later misses wait for the first instead of going upstream. */
    const filling = new Map<string, Promise<CacheEntry | undefined>>();
    const revalidating = new Set<string>();

    const ttlOf = (e: CacheEntry) =>
      (e.lifetime +
        Math.max(e.swr, e.sie) +
        (e.headers.etag || e.headers['last-modified'] ? o.keepStale / 1000 : 0)) *
        1000 +
      1000;

    /**
     * Stores under the key the response's own Vary names give (not the one looked up), unless
     * the URL was invalidated while the response was on its way (`seen` is the generation the
     * request started with).
     */
    const save = async (
      ctx: RequestContext,
      primary: string,
      seen: string | undefined,
      vary: string[],
      entry: CacheEntry,
    ) => {
      try {
        const current = await store.getRecord(primary);
        if (current && seen !== undefined && current.gen !== seen) return;
        const record = { vary, gen: current?.gen ?? seen ?? randomUUID() };
        await store.setRecord(primary, record, ttlOf(entry));
        await store.set(variantKey(primary, record, ctx), entry, ttlOf(entry));
      } catch (err) {
        storeFailed(err, 'cache: store write failed; response not cached');
      }
    };

    /** Answers from a stored entry (or 304 when the client's own validators match). */
    const serve = (
      ctx: RequestContext,
      e: CacheEntry,
      status: string,
      send?: (s: number, h: HeadOut, b?: Buffer) => void,
    ) => {
      const age = String(Math.floor(ageOf(e, Date.now())));
      const out = (s: number, h: HeadOut, b?: Buffer) => {
        if (send) return send(s, h, b);
        ctx.res.writeHead(s, h);
        ctx.res.end(b);
      };
      const reqHeaders = ctx.req.headers;
      const inm = reqHeaders['if-none-match'];
      const ims = reqHeaders['if-modified-since'];
      const notModified =
        e.status === 200 &&
        (inm !== undefined
          ? etagMatches(inm, header(e.headers.etag))
          : ims !== undefined &&
            e.headers['last-modified'] !== undefined &&
            parseHttpDate(header(e.headers['last-modified'])) <= parseHttpDate(ims));
      if (notModified) {
        const common = { age, 'cache-status': `trellis; ${status}`, 'x-request-id': ctx.requestId };
        const keep: Record<string, string | string[]> = {};
        for (const h of ['etag', 'cache-control', 'vary', 'expires', 'last-modified', 'content-location']) {
          if (e.headers[h] !== undefined) keep[h] = e.headers[h]!;
        }
        return out(304, { ...keep, ...common });
      }
      const cacheStatus = status === 'hit' ? 'trellis; hit' : `trellis; ${status}`;
      if (!send && reqHeaders.range !== undefined && e.status === 200 && ctx.req.method === 'GET') {
        if (servePart(ctx, e, age, cacheStatus)) return;
      }
      const body = ctx.req.method === 'HEAD' ? undefined : e.body;
      const flat = flatHead(e);
      // node's own writeHead keeps only the last of a repeated name in a flat list when headers
      // were already set with setHeader: use the object form then. (The runtime's response
      // merges them itself, keeping every repeat.)
      if (flat.repeated && !(ctx.res instanceof TrellisResponse) && ctx.res.getHeaderNames().length > 0)
        return out(
          e.status,
          { ...e.headers, age, 'cache-status': cacheStatus, 'x-request-id': ctx.requestId },
          body,
        );
      // A fresh list per answer: outer middlewares may edit the head they are given.
      const head = flat.list.concat('age', age, 'cache-status', cacheStatus, 'x-request-id', ctx.requestId);
      // The string body only when no response filter is outside (each would turn it back into bytes).
      if (
        !send &&
        body !== undefined &&
        flat.text !== undefined &&
        !(ctx.res instanceof TrellisResponse && ctx.res.filtered)
      ) {
        ctx.res.writeHead(e.status, head);
        ctx.res.end(flat.text, 'latin1');
        return;
      }
      out(e.status, head, body);
    };

    /**
     * Runs the handler for the client, storing what comes back. With a stale entry the request
     * is made conditional; a 304 (or a 5xx within stale-if-error) is answered from the entry.
     */
    const fill = (
      ctx: RequestContext,
      next: Handler,
      primary: string,
      gen: string | undefined,
      stale?: CacheEntry,
    ) =>
      new Promise<CacheEntry | undefined>((resolve, reject) => {
        const { req, res } = ctx;
        const preset = new Set(res.getHeaderNames());
        // Headers set before the handler ran (outer middlewares: rate limits): an answer the
        // cache makes itself keeps them.
        const kept = res.getHeaders();
        const requestedAt = Date.now();
        let plan: StorePlan | undefined;
        const chunks: Buffer[] = [];
        let bytes = 0;
        let tooBig = false;
        let mode: 'store' | 'revalidated' | 'stale-if-error' = 'store';
        let head: Head | undefined;
        // The client's own validators, put back once upstream has answered our conditional request.
        const clientValidators = { inm: req.headers['if-none-match'], ims: req.headers['if-modified-since'] };
        if (stale) {
          if (stale.headers.etag) req.headers['if-none-match'] = header(stale.headers.etag);
          else delete req.headers['if-none-match'];
          if (stale.headers['last-modified'])
            req.headers['if-modified-since'] = header(stale.headers['last-modified']);
          else delete req.headers['if-modified-since'];
          syncRaw(req.rawHeaders, req.headers);
        }
        let ended = false;
        // A client gone before the end leaves nothing to store; waiters then go upstream.
        res.once('close', () => {
          if (!ended) resolve(undefined);
        });
        // The response phase: tee what the handler sends into the entry, or hold an upstream
        // 304 / 5xx back and answer from the stored entry instead.
        const sender =
          (out: ResponseSink) =>
          (s: number, h: HeadOut, b?: Buffer): void => {
            out.writeHead(s, withKept(h, kept));
            out.end(b);
          };
        ctx.onResponse({
          head: (r) => {
            head = { statusCode: r.statusCode, headers: r.getHeaders() };
            if (stale) {
              req.headers['if-none-match'] = clientValidators.inm;
              req.headers['if-modified-since'] = clientValidators.ims;
            }
            const age = stale ? ageOf(stale, Date.now()) : 0;
            if (stale && r.statusCode === 304) {
              mode = 'revalidated';
              return 'hold';
            }
            if (stale && r.statusCode >= 500 && !stale.mustRevalidate && age < stale.lifetime + stale.sie) {
              mode = 'stale-if-error';
              return 'hold';
            }
            plan = planStore(head, preset, ctx, o, Date.now());
            const declared = Number(r.getHeader('content-length') ?? 0);
            if (declared > o.maxEntrySize) tooBig = true;
            // RFC 9211 detail: why this answer was not stored, so a user can see it.
            const why = plan.notStored ?? (tooBig ? 'too large' : undefined);
            r.setHeader(
              'cache-status',
              `trellis; fwd=${stale ? 'stale' : 'miss'}; fwd-status=${r.statusCode}${
                why === undefined ? '' : `; detail="not stored: ${why}"`
              }`,
            );
            return undefined;
          },
          write: (chunk, out) => {
            if (mode !== 'store') return true;
            if (!tooBig) {
              bytes += chunk.length;
              if (bytes > o.maxEntrySize) {
                tooBig = true;
                chunks.length = 0;
              } else chunks.push(chunk);
            }
            return out.write(chunk);
          },
          end: (out) => {
            ended = true;
            if (mode === 'revalidated' && stale) {
              const fresh = freshen(stale, head!, o);
              const names = parseVary(fresh.headers.vary);
              void save(ctx, primary, gen, names === '*' ? [] : names, fresh).then(() => resolve(fresh));
              serve(ctx, fresh, 'hit; detail=revalidated', sender(out));
              return;
            }
            if (mode === 'stale-if-error' && stale) {
              serve(ctx, stale, 'hit; detail=stale-if-error', sender(out));
              resolve(undefined);
              return;
            }
            out.end();
            if (tooBig || !plan || plan.notStored !== undefined) return resolve(undefined);
            const entry = toEntry(plan, head!, Buffer.concat(chunks), o, Date.now(), requestedAt);
            void save(ctx, primary, gen, plan.vary, entry).then(() => resolve(entry));
          },
        });
        Promise.resolve(next(ctx)).catch((err) => {
          resolve(undefined);
          reject(err);
        });
      });

    /** stale-while-revalidate: refresh in the background, once per key at a time. */
    const revalidateInBackground = (
      ctx: RequestContext,
      next: Handler,
      primary: string,
      key: string,
      gen: string,
      e: CacheEntry,
    ) => {
      if (revalidating.has(key)) return;
      revalidating.add(key);
      const conditional: Record<string, string> = {};
      if (e.headers.etag) conditional['if-none-match'] = header(e.headers.etag)!;
      if (e.headers['last-modified']) conditional['if-modified-since'] = header(e.headers['last-modified'])!;
      const bg = backgroundContext(ctx, conditional);
      fill(bg, next, primary, gen, e)
        .catch((err) =>
          deps.logger.warn({ err, middleware: deps.name }, 'cache: background revalidation failed'),
        )
        .finally(() => {
          revalidating.delete(key);
          bg.res.emit('close');
        });
    };

    /** Makes every stored variant of a URL unreachable: a new generation, one write. */
    const invalidate = async (primary: string) => {
      try {
        const record = await store.getRecord(primary);
        if (record) await store.setRecord(primary, { vary: record.vary, gen: randomUUID() }, o.keepStale);
      } catch (err) {
        storeFailed(err, 'cache: invalidation failed');
      }
    };

    /** The memory store answers synchronously: a hit then costs no promise and no microtask. */
    const memory = store instanceof MemoryCacheStore ? store : undefined;

    /** Looks up the entry, then answers from it, revalidates it, coalesces or fills. */
    const lookup = async (ctx: RequestContext, next: Handler, method: string, primary: string) => {
      let key = primary;
      let gen: string | undefined;
      let entry: CacheEntry | undefined;
      try {
        const record = await store.getRecord(primary);
        if (record) {
          gen = record.gen;
          key = variantKey(primary, record, ctx);
          entry = await store.get(key);
        }
      } catch (err) {
        storeFailed(err, 'cache: store read failed; passing through');
        return next(ctx);
      }
      return answer(ctx, next, method, primary, key, gen, entry);
    };

    /**
     * Whether a stored response may answer a request with Authorization (RFC 9111 3.5): only
     * one the origin marked as shared (public, s-maxage, must-revalidate), unless told otherwise.
     */
    const sharedForAuthorized = (e: CacheEntry) => {
      if (o.cacheAuthorized) return true;
      const cc = effectiveCacheControl(e.headers);
      return cc.has('public') || cc.has('s-maxage') || cc.has('must-revalidate');
    };

    const answer = async (
      ctx: RequestContext,
      next: Handler,
      method: string,
      primary: string,
      key: string,
      gen: string | undefined,
      found: CacheEntry | undefined,
    ): Promise<void> => {
      const authorized = ctx.req.headers.authorization !== undefined;
      const entry = found && (!authorized || sharedForAuthorized(found)) ? found : undefined;
      const rc =
        o.requestCacheControl && ctx.req.headers['cache-control'] !== undefined
          ? parseCacheControl(ctx.req.headers['cache-control'])
          : undefined;
      const onlyIfCached = rc?.has('only-if-cached') === true;
      if (entry) {
        const age = ageOf(entry, Date.now());
        const allow = rc ? requestAllowance(rc, age) : undefined;
        if (!allow?.revalidate) {
          // RFC 9111 5.2.1: min-fresh asks for that much freshness left; max-stale accepts
          // that much staleness, except where the response forbids stale use.
          const left = entry.lifetime - age;
          if (left > 0 && left >= (allow?.minFresh ?? 0)) return serve(ctx, entry, 'hit');
          if (allow && left <= 0 && !entry.mustRevalidate && -left <= allow.maxStale)
            return serve(ctx, entry, 'hit; detail=max-stale');
          if (!entry.mustRevalidate && left <= 0 && -left < entry.swr) {
            serve(ctx, entry, 'hit; detail=stale-while-revalidate');
            return revalidateInBackground(ctx, next, primary, key, gen!, entry);
          }
        }
        // only-if-cached with a stored response we may not use as it is: RFC 9111 5.2.1.7 (504).
        if (onlyIfCached) return notCached(ctx);
      }
      if (onlyIfCached) return notCached(ctx);
      // HEAD misses go upstream as they are; only GET fills the cache.
      if (method === 'HEAD') return next(ctx);
      const pending = filling.get(key);
      if (pending) {
        const filled = await pending;
        if (filled && (!authorized || sharedForAuthorized(filled)))
          return serve(ctx, filled, 'hit; detail=coalesced');
        return next(ctx);
      }
      const p = fill(ctx, next, primary, gen, entry);
      filling.set(key, p);
      try {
        await p;
      } finally {
        filling.delete(key);
      }
    };

    const notCached = (ctx: RequestContext) =>
      refuse(ctx, {
        status: 504,
        code: 'TRELLIS_E_CACHE_NOT_CACHED',
        detail: 'the request asked for a stored answer only (only-if-cached) and none can be used',
        headers: { 'cache-status': 'trellis; fwd=miss; detail="only-if-cached"' },
      });

    /**
     * After an unsafe method's success: the URL, and its Location / Content-Location when they
     * are on the same origin (RFC 9111 4.4: another host's entries are not ours to drop).
     */
    const invalidateAfter = (ctx: RequestContext, origin: string, path: string, also: readonly unknown[]) => {
      const status = ctx.res.statusCode;
      if (status >= 400 || status < 200) return;
      void invalidate(origin + path);
      for (const v of also) {
        if (typeof v !== 'string') continue;
        try {
          const base = new URL(origin + path);
          const u = new URL(v, base);
          if (u.origin === base.origin) void invalidate(`${origin}${u.pathname}${u.search}`);
        } catch {
          // Not a URL (or a Host that is not one): nothing more to invalidate.
        }
      }
    };

    const middleware =
      (next: Handler): Handler =>
      (ctx) => {
        const method = ctx.req.method ?? 'GET';
        const host = header(ctx.req.headers.host);
        const origin = `${ctx.protocol}://${host === undefined ? '' : host.toLowerCase()}`;
        const path = ctx.req.url ?? '/';
        const primary = origin + path;
        if (!SAFE.has(method)) {
          // Read from the head as it goes out: a flat-list head never shows in getHeader later.
          let also: unknown[] = [];
          ctx.onResponse({
            head: (head) => {
              also = [head.getHeader('location'), head.getHeader('content-location')];
              return undefined;
            },
          });
          ctx.res.once('finish', () => invalidateAfter(ctx, origin, path, also));
          return next(ctx);
        }
        // Only GET and HEAD are served from the cache.
        if (method !== 'GET' && method !== 'HEAD') return next(ctx);
        if (!memory) return lookup(ctx, next, method, primary);
        // Memory store: the same steps as `lookup`, answering a plain fresh hit in this tick.
        const record = memory.getRecordNow(primary);
        if (!record) return answer(ctx, next, method, primary, primary, undefined, undefined);
        const key = variantKey(primary, record, ctx);
        const entry = memory.getNow(key);
        const h = ctx.req.headers;
        if (
          entry !== undefined &&
          h.authorization === undefined &&
          h['cache-control'] === undefined &&
          ageOf(entry, Date.now()) < entry.lifetime
        )
          return serve(ctx, entry, 'hit');
        return answer(ctx, next, method, primary, key, record.gen, entry);
      };
    return Object.assign(middleware, {
      close: () => store.close(),
      ...(breaker ? { health: () => breaker.health() } : {}),
    });
  },
});

/** Mirrors header changes into rawHeaders, which the proxy forwards from. */
function syncRaw(raw: string[], headers: Record<string, string | string[] | undefined>): void {
  for (let i = raw.length - 2; i >= 0; i -= 2) {
    const k = raw[i]!.toLowerCase();
    if (k === 'if-none-match' || k === 'if-modified-since') raw.splice(i, 2);
  }
  for (const k of ['if-none-match', 'if-modified-since']) {
    const v = headers[k];
    if (typeof v === 'string') raw.push(k, v);
  }
}
