import {
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleWhen,
  retry,
  TimeoutStrategy,
  timeout,
  wrap,
} from 'cockatiel';
import { request } from 'undici';
import { TrellisError } from '../core/errors.js';
import type { Filter, FilterOptions } from './engine.js';
import { map } from './filters.js';
import type { Message } from './message.js';

/** Options of enrich(). */
export interface EnrichOptions<I, O> extends FilterOptions {
  /** The URL to call for a value (a string: the same URL for every message). */
  url: string | ((value: I, message: Message<I>) => string);
  /** Default GET; with POST/PUT the body is `body(value)` or the value as JSON. */
  method?: 'GET' | 'POST' | 'PUT';
  body?: (value: I) => unknown;
  headers?: Record<string, string>;
  /** Per attempt (default 2 s). */
  timeoutMs?: number;
  /** HTTP attempts for one message before the filter's own retry policy takes over (default 3). */
  httpAttempts?: number;
  /** After this many failed calls in a row, calls fail fast for 5 s (default 5). */
  breakAfter?: number;
  /** Combines the value and the response body (parsed JSON, or text) into the output. */
  merge: (value: I, response: unknown, message: Message<I>) => O;
}

/** An HTTP answer that is worth trying again: 429 and 5xx (4xx is the message's fault). */
class RetryableStatus extends Error {
  constructor(readonly status: number) {
    super(`HTTP ${status}`);
  }
}

/**
 * Calls an HTTP service for each message (undici) and merges the answer in: a timeout per
 * attempt, jittered exponential retries on network errors, 429 and 5xx, and a circuit breaker
 * so a dead service fails fast (cockatiel, the same policies the ambassador uses). A 4xx answer
 * or a breaker that stays open fails the message, which then follows the filter's retry policy
 * and ends in the dead-letter sink.
 */
export function enrich<I, O>(options: EnrichOptions<I, O>): Filter<I, O> {
  const name = options.name ?? 'enrich';
  const policy = wrap(
    retry(
      handleWhen((err) => !(err instanceof TrellisError)),
      {
        maxAttempts: Math.max(0, (options.httpAttempts ?? 3) - 1),
        backoff: new ExponentialBackoff({ initialDelay: 50, maxDelay: 2000 }),
      },
    ),
    circuitBreaker(
      handleWhen((err) => !(err instanceof TrellisError)),
      {
        halfOpenAfter: 5000,
        breaker: new ConsecutiveBreaker(options.breakAfter ?? 5),
      },
    ),
    timeout(options.timeoutMs ?? 2000, TimeoutStrategy.Aggressive),
  );
  const method = options.method ?? 'GET';
  return map<I, O>(
    async (value, message) => {
      const url = typeof options.url === 'string' ? options.url : options.url(value, message);
      const body = method === 'GET' ? undefined : JSON.stringify(options.body ? options.body(value) : value);
      const answer = await policy.execute(async ({ signal }) => {
        const res = await request(url, {
          method,
          signal,
          headers: {
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
            'idempotency-key': message.id,
            ...options.headers,
          },
          ...(body === undefined ? {} : { body }),
        });
        const text = await res.body.text();
        if (res.statusCode === 429 || res.statusCode >= 500) throw new RetryableStatus(res.statusCode);
        if (res.statusCode >= 400) {
          throw new TrellisError(
            'TRELLIS_E_PIPELINE_ENRICH_FAILED',
            `${name}: ${method} ${url} answered ${res.statusCode}: ${text.slice(0, 200)}`,
            { details: { status: res.statusCode } },
          );
        }
        const type = String(res.headers['content-type'] ?? '');
        return type.includes('json') && text ? (JSON.parse(text) as unknown) : text;
      });
      return options.merge(value, answer, message);
    },
    { ...options, name },
  );
}
