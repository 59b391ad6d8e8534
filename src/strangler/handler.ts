import { TrellisError } from '../core/errors.js';
import { compileRewrite } from '../handlers/proxy/rewrite.js';
import { defineHandler } from '../handlers/types.js';
import { type ForwardOptions, forward } from '../http/exchange/index.js';
import { sendProblem } from '../http/problem.js';
import type { AccessLog, RequestContext } from '../http/types.js';
import type { ServicePool } from '../http/upstream/types.js';
import { ComparisonCache } from './comparison-cache.js';
import { compileIgnore, type IgnoreRules } from './diff.js';
import { stickyKeyFunction } from './key.js';
import { GuardRails, LiveState } from './live.js';
import { stranglerMetrics } from './metrics.js';
import { MismatchLog } from './mismatches.js';
import { NoiseModel } from './noise.js';
import { stranglerSchema } from './options.js';
import { stranglerPanel, stranglerSetAction } from './panel.js';
import { ReportPublisher } from './reports.js';
import {
  answerOf,
  CopyDeadlines,
  type CopyOutcome,
  captureAnswer,
  compareRaw,
  copyRequest,
  type RawAnswer,
  sameBody,
  sendCopy,
  teeRequestBody,
} from './shadow.js';
import { ComparisonQueue, ShadowQueue } from './shadow-queue.js';
import { defaultStateStore, MigrationState } from './state.js';
import { stepRoute } from './step.js';
import { toModern } from './sticky.js';
import { type StranglerRouteView, stranglerRoutes } from './views.js';

interface Evidence {
  noise: NoiseModel;
  mismatches: MismatchLog;
  counts: { legacy: number; modern: number; retired: number; legacyErrors: number; modernErrors: number };
  shadowCounts: { sent: number; skipped: number };
}
const evidence = new Map<string, Evidence>();
function evidenceOf(key: string, make: () => Evidence): Evidence {
  let e = evidence.get(key);
  if (e === undefined) {
    e = make();
    evidence.set(key, e);
  }
  return e;
}

/** Comparisons waiting at most per route (beyond: dropped, counted), and run per turn. */
const COMPARISONS_WAITING = 4096;
const COMPARISON_BATCH = 128;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const ROUTE_NAME = /^[\w.:-]{1,200}$/;

/**
 * Strangler Fig: `strangler:` on a route moves it from a `legacy` service to a `modern` one
 * with a mode that changes live (see docs/strangler-fig.md): `legacy`, `shadow` (legacy
 * answers, modern gets a copy, both answers compared), `canary` (a sticky share of keys to
 * modern), `modern` (optionally shadowing legacy in reverse) and `retired` (410).
 */
export const stranglerHandler = defineHandler({
  type: 'strangler',
  options: stranglerSchema,
  references: (o) => [
    { path: ['legacy'], service: o.legacy },
    { path: ['modern'], service: o.modern },
  ],
  async create(o, deps) {
    const route = deps.routeName;
    if (!ROUTE_NAME.test(route)) {
      throw new TrellisError(
        'TRELLIS_E_ROUTE_INVALID',
        `route "${route}": a strangler route needs a name of letters, digits, . _ : - (its migration state is kept under it)`,
      );
    }
    const pool = (name: string): ServicePool => {
      const p = deps.services.get(name);
      if (p === undefined)
        throw new TrellisError(
          'TRELLIS_E_UNKNOWN_SERVICE',
          `unknown service "${name}": define it under services:`,
        );
      return p;
    };
    const legacy = pool(o.legacy);
    const modern = pool(o.modern);
    const log = deps.logger;
    const metrics = stranglerMetrics(deps.metrics, route);
    // The runtime's shared store of that name or URL: one connection per process.
    const store = await deps.shared.keyValue(o.store ?? defaultStateStore(deps.baseDir));
    const state = new MigrationState(store, o.statePrefix);
    const live = new LiveState(
      route,
      state,
      { mode: o.mode, weight: o.weight, reverseShadow: o.reverseShadow },
      log,
    );
    await Promise.race([live.ready, new Promise((r) => setTimeout(r, 2000).unref())]);

    const target = compileRewrite(o);
    const forwardOptions: ForwardOptions = {
      retryNonIdempotent: false,
      preserveHost: o.preserveHost,
      target,
      ...(o.timeout === undefined ? {} : { timeoutMs: o.timeout }),
    };
    const stickyKey = stickyKeyFunction(o.sticky);
    const queue = new ShadowQueue(o.shadow.concurrency, o.shadow.queue);
    const deadlines = new CopyDeadlines(o.shadow.timeout);
    const sample = o.shadow.sample;
    const comparisons = new ComparisonQueue(
      COMPARISONS_WAITING,
      COMPARISON_BATCH,
      (err) => log.warn({ err }, 'shadow comparison failed'),
      () => metrics.compared('dropped'),
    );
    const limits = {
      timeoutMs: o.shadow.timeout,
      maxBodySize: o.shadow.maxBodySize,
      maxResponseSize: o.shadow.maxResponseSize,
    };
    const shadowUnsafe = o.shadowUnsafe ?? o.shadow.unsafe;
    const rules: IgnoreRules = {
      paths: o.diff.ignore,
      headers: o.diff.ignoreHeaders,
      compareHeaders: o.diff.headers.map((h) => h.toLowerCase()),
    };
    const ignore = compileIgnore(rules);
    // The evidence (mismatches, noise, counts) outlives a reload of the same route.
    const ev = evidenceOf(`${route}\0${legacy.name}\0${modern.name}`, () => ({
      noise: new NoiseModel(),
      mismatches: new MismatchLog({
        keep: o.mismatches.keep,
        sample: o.mismatches.sample,
        redact: o.mismatches.redact,
        maxBodySize: o.mismatches.maxBodySize,
      }),
      counts: { legacy: 0, modern: 0, retired: 0, legacyErrors: 0, modernErrors: 0 },
      shadowCounts: { sent: 0, skipped: 0 },
    }));
    const { noise, mismatches, counts, shadowCounts } = ev;
    // Per route (its own ignore rules and sides): pairs of bodies seen before are not diffed again.
    const diffCache = new ComparisonCache();
    const guard =
      o.guard === undefined
        ? undefined
        : new GuardRails(
            route,
            live,
            {
              maxErrorRate: o.guard.maxErrorRate,
              maxP99Ms: o.guard.maxP99,
              minSamples: o.guard.minSamples,
              windowMs: o.guard.window,
              stepBack: o.guard.stepBack,
              canaryWeight: o.weight > 0 && o.weight < 100 ? o.weight : 10,
            },
            metrics,
            log,
          );

    /** Counts an answer of the primary side when the client's response closes. */
    const watchPrimary = (ctx: RequestContext, side: 'legacy' | 'modern', mode: string) => {
      const started = performance.now();
      counts[side]++;
      metrics.answered(side, mode);
      ctx.serviceName = side === 'legacy' ? legacy.name : modern.name;
      ctx.res.once('close', () => {
        const error = ctx.res.statusCode >= 500 || !ctx.res.writableFinished;
        if (error) counts[side === 'legacy' ? 'legacyErrors' : 'modernErrors']++;
        if (side === 'modern') guard?.record(error, performance.now() - started);
      });
    };

    const compare = (request: CopyFacts, primary: RawAnswer | undefined, copy: CopyOutcome) => {
      const primarySide = request.primary;
      const copySide = primarySide === 'legacy' ? 'modern' : 'legacy';
      const failed = !copy.ok || copy.answer.status >= 500;
      if (copySide === 'modern') guard?.record(failed, copy.ms);
      if (failed) counts[copySide === 'legacy' ? 'legacyErrors' : 'modernErrors']++;
      // Built only when it is written: at the usual warn level the line costs nothing.
      if (log.isLevelEnabled('info'))
        log.info(
          {
            shadow: true,
            reqId: request.requestId,
            side: copySide,
            method: request.method,
            path: request.path,
            status: copy.ok ? copy.answer.status : undefined,
            failure: copy.ok ? undefined : copy.failure,
            ms: Math.round(copy.ms * 10) / 10,
          },
          'shadow request',
        );
      // A primary that did not complete (client gone) or that the gateway answered itself
      // (legacy down: 502; see captureAnswer) leaves nothing to compare the copy with.
      if (primary === undefined || !copy.ok) {
        mismatches.failure();
        metrics.compared('failed');
        return;
      }
      const { difference, answers } = compareRaw(
        primary,
        copy.answer,
        { ignore, noise: noise.paths, rules },
        diffCache,
      );
      if (difference.equal) mismatches.matched();
      else {
        const [a, b] = answers();
        mismatches.record(request, difference, a, b);
      }
      metrics.compared(difference.equal ? 'match' : 'mismatch');
    };

    /** Answers from `primaryPool` and sends a copy to `copyPool`, then compares. */
    const shadowed = (ctx: RequestContext, primarySide: 'legacy' | 'modern', mode: string) => {
      const primaryPool = primarySide === 'legacy' ? legacy : modern;
      const copyPool = primarySide === 'legacy' ? modern : legacy;
      const copySide = primarySide === 'legacy' ? 'modern' : 'legacy';
      watchPrimary(ctx, primarySide, mode);
      const method = ctx.req.method ?? 'GET';
      const safe = SAFE_METHODS.has(method);
      if (ctx.upgrade !== undefined || (!safe && !shadowUnsafe)) {
        if (!safe) metrics.shadowSkipped('unsafe');
        shadowCounts.skipped++;
        forward(ctx, primaryPool, forwardOptions);
        return;
      }
      const h = ctx.req.headers;
      const hasBody =
        h['transfer-encoding'] !== undefined ||
        (h['content-length'] !== undefined && h['content-length'] !== '0');
      if (hasBody && Number(h['content-length'] ?? 0) > limits.maxBodySize) {
        metrics.shadowSkipped('body');
        shadowCounts.skipped++;
        forward(ctx, primaryPool, forwardOptions);
        return;
      }
      if (sample < 1 && Math.random() >= sample) {
        // Not in the sampled share: no copy, and nothing at all done for one on this request.
        metrics.shadowSkipped('sample');
        shadowCounts.skipped++;
        forward(ctx, primaryPool, forwardOptions);
        return;
      }
      const slot = queue.reserve();
      if (slot === undefined) {
        metrics.shadowSkipped('full');
        forward(ctx, primaryPool, forwardOptions);
        return;
      }
      const path = target(ctx);
      const request = copyRequest(ctx, copyPool, path);
      const body = hasBody ? teeRequestBody(ctx, limits.maxBodySize) : Promise.resolve(undefined);
      const { filter, answer, abandon } = captureAnswer(limits.maxResponseSize, answeredByGateway(ctx));
      // What the copy's continuation needs of the request, so that it does not keep the request
      // context (and its req, res and socket state) alive until the comparison: less to scavenge.
      const facts: CopyFacts = { requestId: ctx.requestId, method, path: ctx.path, primary: primarySide };
      const logged = deps.accessLog === undefined ? undefined : ctx;
      ctx.onResponse(filter);
      // Noise learning: a sampled share of safe requests goes to legacy a second time; what
      // differs between its two answers differs by itself.
      const learn =
        o.noise !== undefined &&
        primarySide === 'legacy' &&
        safe &&
        !hasBody &&
        Math.random() < o.noise.sample;
      const again = learn ? copyRequest(ctx, legacy, path) : undefined;
      // A client that leaves before the end leaves nothing to compare (and nothing waiting).
      ctx.res.once('close', abandon);
      forward(ctx, primaryPool, forwardOptions);
      void (async () => {
        let copy: CopyOutcome;
        try {
          const copyBody = await body;
          if (hasBody && copyBody === undefined) {
            // Larger than the limit once streamed (chunked), or the client left midway.
            slot.done();
            metrics.shadowSkipped('body');
            shadowCounts.skipped++;
            return;
          }
          await slot.start;
          metrics.shadowSent(copySide);
          shadowCounts.sent++;
          copy = await sendCopy(copyPool, request, copyBody, limits, deadlines);
        } catch (err) {
          copy = { ok: false, failure: (err as Error).message, ms: 0 };
        } finally {
          slot.done();
        }
        if (deps.accessLog && logged) logShadow(deps.accessLog, logged, copyPool.name, request.path, copy);
        const primary = await answer;
        const slot2 = learn && primary !== undefined ? queue.reserve() : undefined;
        if (slot2 !== undefined) {
          try {
            await slot2.start;
            const second = await sendCopy(legacy, again!, undefined, limits, deadlines);
            if (second.ok && primary !== undefined) {
              // Byte-equal answers teach nothing but the count; others are parsed and diffed.
              if (sameBody(primary, second.answer)) noise.agreed();
              else noise.learn(answerOf(primary), answerOf(second.answer));
            }
          } finally {
            slot2.done();
          }
        }
        // Compared off the request's path (the client has its answer by now), in batches.
        comparisons.push(() => compare(facts, primary, copy));
      })();
    };

    const handler = (ctx: RequestContext) => {
      const now = live.current;
      switch (now.mode) {
        case 'legacy':
          watchPrimary(ctx, 'legacy', 'legacy');
          forward(ctx, legacy, forwardOptions);
          return;
        case 'shadow':
          shadowed(ctx, 'legacy', 'shadow');
          return;
        case 'canary': {
          const side = toModern(route, stickyKey(ctx), now.weight) ? 'modern' : 'legacy';
          watchPrimary(ctx, side, 'canary');
          forward(ctx, side === 'modern' ? modern : legacy, forwardOptions);
          return;
        }
        case 'modern':
          if (now.reverseShadow) shadowed(ctx, 'modern', 'modern');
          else {
            watchPrimary(ctx, 'modern', 'modern');
            forward(ctx, modern, forwardOptions);
          }
          return;
        default:
          counts.retired++;
          metrics.answered('none', 'retired');
          ctx.errorCode = 'TRELLIS_E_STRANGLER_RETIRED';
          sendProblem(ctx, {
            status: 410,
            title: 'Gone',
            code: 'TRELLIS_E_STRANGLER_RETIRED',
            detail: `route ${route} was retired: its legacy service has been switched off and the capability lives elsewhere`,
          });
      }
    };

    const view: StranglerRouteView = {
      route,
      legacy: legacy.name,
      modern: modern.name,
      live: () => live.current,
      split: () => ({ legacy: counts.legacy, modern: counts.modern, retired: counts.retired }),
      errors: () => ({ legacy: counts.legacyErrors, modern: counts.modernErrors }),
      shadow: () => ({
        sent: shadowCounts.sent,
        dropped: queue.dropped,
        skipped: shadowCounts.skipped,
        ...queue.load,
      }),
      guard: () => (guard === undefined ? undefined : { ...guard.window.stats(), verdict: guard.verdict }),
      report: (top) => {
        const r = mismatches.report(top);
        const noisy = noise.paths;
        return { ...r, fields: r.fields.filter((f) => !noisy.has(f.path)), noise: noise.summary() };
      },
      step: (request) => stepRoute(store, o.statePrefix, route, request),
    };
    stranglerRoutes.set(route, view);
    const publisher = new ReportPublisher(store, o.statePrefix, view, log);

    return Object.assign(handler, {
      panels: [stranglerPanel(view)],
      actions: [stranglerSetAction],
      async close() {
        live.close();
        guard?.close();
        await publisher.close();
        if (stranglerRoutes.get(route) === view) stranglerRoutes.delete(route);
      },
    });
  },
});

/** A shadowed request as its comparison and the mismatch log see it. */
interface CopyFacts {
  requestId: string;
  method: string;
  path: string;
  primary: 'legacy' | 'modern';
}

/** Whether the gateway answered the request itself (legacy down: a 502 problem), read at its end. */
function answeredByGateway(ctx: RequestContext): () => boolean {
  // Its own closure, so that the shadowed request's continuation does not capture `ctx`.
  return () => ctx.errorCode !== undefined;
}

/**
 * A shadow copy's access line: the client's request id, route and path, the copy's service,
 * status and time, marked `"shadow":true` (a copy that got no answer: 504 when it ran out of
 * time, else 502, with the reason as its error).
 */
function logShadow(
  log: AccessLog,
  ctx: RequestContext,
  service: string,
  path: string,
  copy: CopyOutcome,
): void {
  const line = {
    requestId: ctx.requestId,
    req: ctx.req,
    routeName: ctx.routeName,
    frontend: ctx.frontend,
    serviceName: service,
    clientIp: ctx.clientIp,
    attempts: 1,
    shadow: true,
    ...(copy.ok
      ? {}
      : { errorCode: copy.failure === 'timeout' ? 'TRELLIS_E_SHADOW_TIMEOUT' : 'TRELLIS_E_SHADOW_FAILED' }),
  } as unknown as RequestContext;
  const status = copy.ok ? copy.answer.status : copy.failure === 'timeout' ? 504 : 502;
  log(line, path, status, copy.ms / 1000);
}
