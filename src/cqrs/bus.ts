import { TrellisError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { Counter, Histogram, LATENCY_BUCKETS, type Registry } from '../core/metrics.js';

/** What a bus passes to each middleware and handler for one call. */
export interface Envelope<P = unknown> {
  /** The registered name of the command or query. */
  name: string;
  payload: P;
  /** Who sends it, for the authorization hook (a user id, JWT claims, …). */
  principal?: unknown;
  /** A key that makes a retried command apply once (commands only). */
  idempotencyKey?: string;
  /** Free-form values middlewares hand on (correlation ids, …). */
  context: Record<string, unknown>;
}

export type BusHandler<P = unknown, R = unknown> = (payload: P, envelope: Envelope<P>) => Promise<R> | R;

/** Wraps the dispatch of one call, like an HTTP middleware: `(envelope, next) => result`. */
export type BusMiddleware = (envelope: Envelope, next: () => Promise<unknown>) => Promise<unknown>;

/**
 * A command bus or a query bus: typed handlers registered by name and a middleware chain run
 * around each call. Every call is independent: one handler that throws fails only its own call.
 */
export class Bus<M extends Record<string, [unknown, unknown]> = Record<string, [unknown, unknown]>> {
  private readonly handlers = new Map<string, BusHandler>();
  private readonly middlewares: BusMiddleware[] = [];

  /** `command` or `query`: used in errors, logs and metrics. */
  constructor(readonly kind: 'command' | 'query') {}

  /** Registers the handler for a name (a second registration for the same name is an error). */
  register<K extends keyof M & string>(name: K, handler: BusHandler<M[K][0], M[K][1]>): this {
    if (this.handlers.has(name)) {
      throw new TrellisError('TRELLIS_E_BUS_DUPLICATE', `${this.kind} "${name}" already has a handler`);
    }
    this.handlers.set(name, handler as BusHandler);
    return this;
  }

  /** Adds a middleware; the first added runs outermost. */
  use(middleware: BusMiddleware): this {
    this.middlewares.push(middleware);
    return this;
  }

  /** The registered names. */
  names(): string[] {
    return [...this.handlers.keys()];
  }

  /** Dispatches one call through the middleware chain to its handler. */
  async send<K extends keyof M & string>(
    name: K,
    payload: M[K][0],
    options: { principal?: unknown; idempotencyKey?: string; context?: Record<string, unknown> } = {},
  ): Promise<M[K][1]> {
    const handler = this.handlers.get(name);
    if (!handler) {
      // The message reaches HTTP callers: it never lists the registered names (that would map
      // the API for anyone); `names()` gives them to code, and cqrsHttpHandler logs them.
      throw new TrellisError('TRELLIS_E_BUS_NO_HANDLER', `no ${this.kind} "${name}" here`, { status: 404 });
    }
    const envelope: Envelope = {
      name,
      payload,
      principal: options.principal,
      idempotencyKey: options.idempotencyKey,
      context: options.context ?? {},
    };
    const dispatch = (i: number): Promise<unknown> => {
      const mw = this.middlewares[i];
      if (!mw) return Promise.resolve().then(() => handler(envelope.payload, envelope));
      return mw(envelope, () => dispatch(i + 1));
    };
    return (await dispatch(0)) as M[K][1];
  }
}

/** A command bus: commands change state, by name. */
export function commandBus<M extends Record<string, [unknown, unknown]>>(): Bus<M> {
  return new Bus<M>('command');
}

/** A query bus: queries answer questions from read models, by name. */
export function queryBus<M extends Record<string, [unknown, unknown]>>(): Bus<M> {
  return new Bus<M>('query');
}

/** Anything with zod's `safeParse` (a zod schema) validates payloads. */
export interface Schema {
  safeParse(
    value: unknown,
  ): { success: true; data: unknown } | { success: false; error: { issues: unknown[] } };
}

/** Validates each payload against the schema registered for its name (unlisted names pass). */
export function validate(schemas: Record<string, Schema>): BusMiddleware {
  return async (env, next) => {
    const schema = schemas[env.name];
    if (schema) {
      const r = schema.safeParse(env.payload);
      if (!r.success) {
        const issues = r.error.issues as { path?: unknown[]; message?: string }[];
        const text = issues.map((i) => `${(i.path ?? []).join('.') || '(payload)'}: ${i.message}`).join('; ');
        throw new TrellisError('TRELLIS_E_BUS_INVALID_PAYLOAD', `${env.name}: ${text}`, {
          status: 422,
          details: { issues },
        });
      }
      env.payload = r.data;
    }
    return next();
  };
}

/** Refuses a call unless `allow(envelope)` says yes. */
export function authorize(allow: (env: Envelope) => boolean | Promise<boolean>): BusMiddleware {
  return async (env, next) => {
    if (!(await allow(env))) {
      throw new TrellisError('TRELLIS_E_BUS_FORBIDDEN', `not allowed to run "${env.name}"`, { status: 403 });
    }
    return next();
  };
}

/** Logs each call's name, outcome and duration (never the payload, which may hold personal data). */
export function logging(log: Logger): BusMiddleware {
  return async (env, next) => {
    const started = performance.now();
    try {
      const result = await next();
      log.debug({ name: env.name, ms: Math.round(performance.now() - started) }, 'handled');
      return result;
    } catch (err) {
      const code = (err as { code?: string }).code;
      log.warn({ name: env.name, code, ms: Math.round(performance.now() - started) }, 'failed');
      throw err;
    }
  };
}

/** Counts calls by name and outcome and times them, in `registry`. */
export function metrics(registry: Registry, kind: 'command' | 'query'): BusMiddleware {
  const total = new Counter({
    name: `trellis_cqrs_${kind}s_total`,
    help: `${kind}s handled, by name and outcome`,
    labelNames: ['name', 'outcome'],
    registers: [registry],
  });
  const seconds = new Histogram({
    name: `trellis_cqrs_${kind}_seconds`,
    help: `${kind} handling time`,
    labelNames: ['name'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  return async (env, next) => {
    const end = seconds.startTimer({ name: env.name });
    try {
      const result = await next();
      total.inc({ name: env.name, outcome: 'ok' });
      return result;
    } catch (err) {
      total.inc({ name: env.name, outcome: (err as { code?: string }).code ?? 'error' });
      throw err;
    } finally {
      end();
    }
  };
}
