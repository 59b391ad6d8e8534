import { sendProblem } from '../../http/problem.js';
import { sealResponseHeaders } from '../../http/response.js';
import type { Handler, RequestContext } from '../../http/types.js';
import type { ServicePool } from '../../http/upstream/types.js';
import { getPath } from '../../shape/paths.js';
import { MissingValue, render, type Scope } from '../../shape/template.js';
import type { PartCache } from './cache.js';
import { Cancel } from './cancel.js';
import { composeResponse } from './compose.js';
import { type CallResult, callService, DEADLINE } from './fetch.js';
import type { PartMetrics } from './metrics.js';
import type { PartPlan, Plan } from './plan.js';

/** A part's plan plus what it needs at run time, bound once at load. */
export interface PartRuntime {
  plan: PartPlan;
  pool: ServicePool;
  metrics: PartMetrics;
  cache: PartCache | undefined;
}

export interface AggregateRuntime {
  plan: Plan;
  parts: PartRuntime[];
  maxRequestBody: number;
  countResponse: (completed: boolean) => void;
  /** Seconds an incomplete answer may be cached (0: no-store). */
  incompleteMaxAge: number;
}

type Failure = Extract<CallResult, { ok: false }>;

/** What the client sees about a missing optional part (`_missing` in the body). */
export interface MissingPart {
  part: string;
  reason: Failure['reason'];
  status?: number;
}

/**
 * The aggregate handler: every part starts as soon as the parts it reads have answered; the
 * first required failure answers the client at once and cancels the rest; otherwise the
 * composed body is sent with `trellis-completed` saying whether every part made it.
 */
export function createAggregate(rt: AggregateRuntime): Handler {
  const { plan } = rt;
  const n = plan.parts.length;
  return async (ctx) => {
    let body: Buffer | undefined;
    if (plan.forwardsBody) {
      const read = await readBody(ctx, rt.maxRequestBody);
      if (read === null) return;
      body = read;
    }
    const run = new Run(rt, ctx, body);
    const onClose = () => {
      if (!ctx.res.writableFinished) run.cancel('client');
    };
    ctx.res.once('close', onClose);
    for (let i = 0; i < n; i++) run.part(i);
    await Promise.race([Promise.all(run.promises), run.failed]);
    ctx.res.off('close', onClose);
    if (run.failure) {
      run.cancel('failed');
      answerFailure(ctx, plan.parts[run.failure.index]!, run.failure.result, run.missing);
      return;
    }
    if (run.cancelled) return;
    const out = composeResponse(plan, run.bodies, run.ok);
    const completed = run.missing.length === 0;
    if (!completed) out._missing = run.missing;
    rt.countResponse(completed);
    const text = JSON.stringify(out);
    // Sealed, not just set: a headers middleware on the route runs its edits after this head is
    // written and would otherwise give the degraded page the route's lifetime.
    const caching = completed ? undefined : incompleteCaching(rt.incompleteMaxAge);
    if (caching) {
      sealResponseHeaders(ctx.res, caching);
      // Headers set before (by an outer middleware) go too; the head below carries the rest.
      for (const [name, value] of Object.entries(caching))
        if (value === undefined) ctx.res.removeHeader(name);
    }
    ctx.res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'trellis-completed': completed ? 'true' : 'false',
      'x-request-id': ctx.requestId,
      ...(caching ? { 'cache-control': caching['cache-control']! } : {}),
    });
    ctx.res.end(ctx.req.method === 'HEAD' ? undefined : text);
  };
}

/** The caching headers of an incomplete answer: no-store, or a short lifetime. */
function incompleteCaching(maxAge: number): Record<string, string | undefined> {
  return {
    'cache-control': maxAge > 0 ? `max-age=${maxAge}` : 'no-store',
    // Anything else that could give it a longer life is removed.
    'cdn-cache-control': undefined,
    'surrogate-control': undefined,
    expires: undefined,
  };
}

/** The state of one request's aggregation. */
class Run {
  readonly promises: Promise<void>[];
  readonly bodies: unknown[];
  readonly ok: boolean[];
  readonly missing: MissingPart[] = [];
  failure: { index: number; result: Failure } | undefined;
  cancelled = false;
  readonly failed: Promise<void>;
  private signalFailed!: () => void;
  private readonly active = new Set<Cancel>();
  private readonly scope: Scope;

  constructor(
    private readonly rt: AggregateRuntime,
    private readonly ctx: RequestContext,
    private readonly requestBody: Buffer | undefined,
  ) {
    const n = rt.parts.length;
    this.promises = new Array(n);
    this.bodies = new Array(n);
    this.ok = new Array(n).fill(false);
    this.failed = new Promise((resolve) => {
      this.signalFailed = resolve;
    });
    this.scope = {
      params: ctx.params,
      query: rt.plan.usesQuery ? new URLSearchParams(ctx.query) : undefined,
      headers: ctx.req.headers,
      jwt: ctx.state.jwt,
      item: undefined,
      bodies: {},
    };
  }

  /** The promise of part i, started on first use (so dependencies start before dependents wait). */
  part(i: number): Promise<void> {
    let p = this.promises[i];
    if (p === undefined) {
      p = this.start(i);
      this.promises[i] = p;
    }
    return p;
  }

  cancel(why: 'client' | 'failed'): void {
    if (why === 'client') this.cancelled = true;
    for (const ac of this.active) ac.abort(why);
  }

  private async start(i: number): Promise<void> {
    const part = this.rt.parts[i]!;
    const { plan } = part;
    if (plan.waitsFor.length > 0) await Promise.all(plan.waitsFor.map((d) => this.part(d)));
    // After a required failure or a client that left, start nothing new.
    if (this.failure || this.cancelled) return;
    const started = performance.now();
    let result: CallResult;
    const broken = plan.uses.find((d) => !this.ok[d]);
    if (broken !== undefined) {
      const dep = this.rt.parts[broken]!.plan.name;
      result = { ok: false, reason: 'dependency', detail: `needs part "${dep}", which failed` };
    } else {
      result = await this.execute(part);
    }
    const seconds = (performance.now() - started) / 1000;
    if (result.ok) {
      part.metrics.observe(result.cached ? 'cached' : 'ok', seconds);
      return;
    }
    if (result.reason === 'aborted') return;
    part.metrics.observe(result.reason === 'timeout' ? 'timeout' : 'failed', seconds);
    part.metrics.failure(result.reason);
    this.ctx.log.debug(
      { part: plan.name, reason: result.reason, status: result.status },
      'aggregate part failed',
    );
    if (plan.optional) {
      const m: MissingPart = { part: plan.name, reason: result.reason };
      if (result.status !== undefined) m.status = result.status;
      this.missing.push(m);
    } else if (!this.failure) {
      this.failure = { index: i, result };
      this.signalFailed();
    }
  }

  /** Runs the part (once, or fanned out) under its deadline; records a success itself. */
  private async execute(part: PartRuntime): Promise<CallResult> {
    const { plan } = part;
    const ac = new Cancel();
    this.active.add(ac);
    const timer = setTimeout(() => ac.abort(DEADLINE), plan.timeoutMs);
    try {
      const result = plan.forEach ? await this.fanOut(part, ac) : await this.callOnce(part, this.scope, ac);
      if (result.ok) {
        this.ok[plan.index] = true;
        this.bodies[plan.index] = result.body;
        this.scope.bodies[plan.name] = result.body;
      }
      return result;
    } finally {
      clearTimeout(timer);
      this.active.delete(ac);
    }
  }

  private async fanOut(part: PartRuntime, ac: Cancel): Promise<CallResult> {
    const { plan } = part;
    const each = plan.forEach!;
    const source = getPath(this.scope.bodies[each.part], each.path);
    const list = source === undefined ? [] : source;
    if (!Array.isArray(list)) {
      return { ok: false, reason: 'missingInput', detail: `forEach found no list in part "${each.part}"` };
    }
    if (list.length > plan.maxFanOut) {
      return {
        ok: false,
        reason: 'fanOutTooWide',
        detail: `would fan out to ${list.length} calls, more than maxFanOut ${plan.maxFanOut}`,
      };
    }
    const results: unknown[] = new Array(list.length);
    let failure: Failure | undefined;
    let next = 0;
    const worker = async () => {
      while (failure === undefined && next < list.length) {
        const k = next++;
        const r = await this.callOnce(part, { ...this.scope, item: list[k] }, ac);
        if (r.ok) results[k] = r.body;
        else if (failure === undefined) {
          failure = r;
          // One element failed the part: the others' answers are no longer wanted.
          ac.abort('fan-out failed');
        }
      }
    };
    const workers: Promise<void>[] = [];
    for (let w = 0; w < Math.min(plan.concurrency, list.length); w++) workers.push(worker());
    await Promise.all(workers);
    return failure ?? { ok: true, body: results, text: '' };
  }

  /** One call of a part: render the request, answer from the cache or call the service. */
  private async callOnce(part: PartRuntime, scope: Scope, signal: Cancel): Promise<CallResult> {
    const { plan } = part;
    const path = render(plan.path, scope, 'path');
    if (path instanceof MissingValue) return missingInput(path);
    let query = plan.passQuery ? this.ctx.query : '';
    for (const [name, t] of plan.query) {
      const v = render(t, scope, 'raw');
      if (v instanceof MissingValue) continue;
      query += `${query === '' ? '' : '&'}${encodeURIComponent(name)}=${encodeURIComponent(v)}`;
    }
    const url = query === '' ? path : `${path}?${query}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    let varying = '';
    const client = this.ctx.req.headers;
    for (const name of plan.forwardHeaders) {
      const v = client[name];
      if (v === undefined) continue;
      headers[name] = Array.isArray(v) ? v.join(', ') : v;
      varying += `\n${name}:${headers[name]}`;
    }
    for (const [name, t] of plan.headers) {
      const v = render(t, scope, 'raw');
      if (v instanceof MissingValue) continue;
      headers[name] = v;
      varying += `\n${name}:${v}`;
    }
    // Headers that shape the answer are part of the cache key, so one user's answer is never
    // served to another.
    const key = part.cache ? `${plan.service} ${plan.method} ${url}${varying}` : '';
    if (part.cache) {
      const text = await part.cache.get(key);
      if (text !== undefined) return { ok: true, body: JSON.parse(text), text, cached: true };
    }
    headers['x-request-id'] = this.ctx.requestId;
    let body: Buffer | undefined;
    if (plan.forwardBody && this.requestBody !== undefined) {
      body = this.requestBody;
      const type = client['content-type'];
      if (type !== undefined) headers['content-type'] = type;
    }
    const result = await callService(part.pool, {
      method: plan.method,
      path: url,
      headers,
      body,
      maxBodySize: plan.maxBodySize,
      signal,
      hashKey: part.pool.hashKey?.(client, this.ctx.clientIp),
    });
    if (result.ok && part.cache) part.cache.set(key, result.text);
    return result;
  }
}

function missingInput(m: MissingValue): Failure {
  return { ok: false, reason: 'missingInput', detail: `has no value for {${m.variable}}: ${m.why}` };
}

/** A required part failed: problem details that name it (never the upstream's own words). */
function answerFailure(ctx: RequestContext, part: PartPlan, result: Failure, missing: MissingPart[]): void {
  let status = 502;
  let code = 'TRELLIS_E_AGGREGATE_PART_FAILED';
  switch (result.reason) {
    case 'timeout':
      status = 504;
      code = 'TRELLIS_E_AGGREGATE_PART_TIMEOUT';
      break;
    case 'status':
      if (result.status !== undefined && result.status >= 400 && result.status < 500) {
        // The service refused this request (not found, forbidden, …): the client should know.
        status = result.status;
        code = 'TRELLIS_E_AGGREGATE_PART_REJECTED';
      }
      break;
    case 'tooLarge':
      code = 'TRELLIS_E_AGGREGATE_PART_TOO_LARGE';
      break;
    case 'tls':
      // The same code as the proxy's: the fix is the service's tls: block, whoever called it.
      code = 'TRELLIS_E_UPSTREAM_TLS';
      break;
    case 'fanOutTooWide':
      code = 'TRELLIS_E_AGGREGATE_FANOUT_TOO_WIDE';
      break;
  }
  const extensions: Record<string, unknown> = { part: part.name, reason: result.reason };
  if (missing.length > 0) extensions.missing = missing;
  sendProblem(ctx, { status, code, detail: `required part "${part.name}" ${result.detail}`, extensions });
}

/** Buffers the client's body for `forwardBody`, under a limit; null when it answered already. */
async function readBody(ctx: RequestContext, max: number): Promise<Buffer | undefined | null> {
  const method = ctx.req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD') return undefined;
  const declared = Number(ctx.req.headers['content-length']);
  const tooLarge = () =>
    sendProblem(ctx, {
      status: 413,
      code: 'TRELLIS_E_AGGREGATE_BODY_TOO_LARGE',
      detail: `the request body is larger than ${max} bytes: send a smaller one`,
    });
  if (declared > max) {
    tooLarge();
    return null;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      tooLarge();
      return null;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
