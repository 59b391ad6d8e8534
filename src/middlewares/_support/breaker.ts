import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleAll,
  isBrokenCircuitError,
} from 'cockatiel';
import type { Logger } from 'pino';
import { z } from 'zod';
import { Gauge, type Registry } from '../../core/metrics.js';
import { duration } from '../../core/units.js';
import type { HealthReport } from '../types.js';

/** `storeBreaker:` of a middleware with a shared store (rateLimit, cache). */
export const storeBreakerOptions = () =>
  z
    .strictObject({
      /** Consecutive failed (or timed out) store calls that open the breaker. */
      failures: z.number().int().positive().default(5),
      /** How long an open breaker skips the store before one call tries it again. */
      halfOpenAfter: duration().prefault('5s'),
    })
    .prefault({});

export type StoreBreakerOptions = z.output<ReturnType<typeof storeBreakerOptions>>;

/** A circuit breaker in front of one middleware's shared store. */
export interface StoreBreaker {
  /** Runs one store call, or throws `BrokenCircuitError` at once while the breaker is open. */
  run<T>(call: () => Promise<T>): Promise<T>;
  /** What `/readyz` shows. */
  health(): HealthReport;
}

export { isBrokenCircuitError as isStoreSkipped };

function openGauge(registry: Registry): Gauge<'middleware'> {
  const name = 'trellis_store_breaker_open';
  return (
    (registry.getSingleMetric(name) as Gauge<'middleware'> | undefined) ??
    new Gauge({
      name,
      help: '1 while a middleware skips its shared store (rateLimit, cache) because the store failed or hung',
      labelNames: ['middleware'],
      registers: [registry],
    })
  );
}

/**
 * A cockatiel circuit breaker around a middleware's store calls. Why: the Redis client's
 * command timeout bounds one call, but a hung (not down) Redis then costs every request the
 * whole timeout for as long as it hangs. Opened after `failures` consecutive failures, the
 * breaker answers at once (the middleware takes its fallback), and after `halfOpenAfter` lets
 * one call through to find out whether the store is back. Every rejection of `call` counts
 * as a store failure: callers turn their own answers (a limit reached) into values first.
 */
export function storeBreaker(
  o: StoreBreakerOptions,
  deps: { logger: Logger; metrics: Registry; name: string },
  fallback: string,
): StoreBreaker {
  const policy = circuitBreaker(handleAll, {
    halfOpenAfter: o.halfOpenAfter,
    breaker: new ConsecutiveBreaker(o.failures),
  });
  const gauge = openGauge(deps.metrics).labels(deps.name);
  gauge.set(0);
  let openedAt = 0;
  policy.onBreak(() => {
    if (openedAt === 0) {
      openedAt = Date.now();
      deps.logger.warn(
        { middleware: deps.name, failures: o.failures, retryInMs: o.halfOpenAfter },
        `shared store failing or hung: skipping it (${fallback}) and trying again every ${o.halfOpenAfter}ms`,
      );
    }
    gauge.set(1);
  });
  policy.onReset(() => {
    deps.logger.info(
      { middleware: deps.name, skippedForMs: Date.now() - openedAt },
      'shared store answering again: using it',
    );
    openedAt = 0;
    gauge.set(0);
  });
  return {
    run(call) {
      // cockatiel makes every call wait for the half-open probe; against a hung store that is
      // the full timeout for all of them. Only the probe waits; the others take the fallback.
      if (policy.state === CircuitState.HalfOpen) return Promise.reject(new BrokenCircuitError());
      return policy.execute(call);
    },
    health() {
      if (policy.state === CircuitState.Closed) return { status: 'ok' };
      const reason =
        policy.lastFailure && 'error' in policy.lastFailure ? policy.lastFailure.error : undefined;
      return {
        status: 'degraded',
        detail: `the shared store is skipped (${fallback}) since ${new Date(openedAt).toISOString()}${
          reason instanceof Error ? `: ${reason.message}` : ''
        }`,
      };
    },
  };
}
