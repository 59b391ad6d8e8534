import { z } from 'zod';
import { duration, size } from '../../core/units.js';
import { compilePlan } from './plan.js';

const METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/** Allow/deny lists, renames and array limits, for one part or for the final shaping step. */
const shaping = {
  /** Keep only these dot paths (`name`, `images[*].url`). */
  allow: z.array(z.string()).optional(),
  /** Remove these dot paths. */
  deny: z.array(z.string()).optional(),
  /** Move values: `{ 'brand.name': brandName, 'items[*].productId': 'items[*].id' }`. */
  rename: z.record(z.string(), z.string()).optional(),
  /** Cut arrays to at most N entries: `{ images: 2 }`. */
  limit: z.record(z.string(), z.number().int().nonnegative()).optional(),
};

/** One named call of an aggregation. */
export const partSchema = z.strictObject({
  /** A service from the file's `services:`. */
  service: z.string().min(1),
  /** HTTP method; only GET/HEAD/OPTIONS unless the aggregate sets `allowUnsafe`. */
  method: z.enum(METHODS).default('GET'),
  /** Upstream path template: `/products/{id}`, `/brands/{product.brandId}`. */
  path: z.string().startsWith('/', 'must start with "/"'),
  /** Query parameters to send, each a template; a parameter whose value is missing is left out. */
  query: z.record(z.string(), z.string()).optional(),
  /** Send the client's query string along (before `query:` additions). */
  passQuery: z.boolean().default(false),
  /** Request headers to send, each a template (`{header.accept-language}`, `{jwt.sub}`). */
  headers: z.record(z.string(), z.string()).optional(),
  /** Client request headers copied as they are (`authorization`, `accept-language`). */
  forwardHeaders: z.array(z.string().min(1)).default([]),
  /** Send the client's request body (unsafe last step only). */
  forwardBody: z.boolean().default(false),
  /** Deadline for this part including retries (default: the aggregate's `partTimeout`). */
  timeout: duration().optional(),
  /** When true a failure leaves the response 200 with `trellis-completed: false`. */
  optional: z.boolean().default(false),
  /** Fetched only as input for other parts; not in the response. */
  internal: z.boolean().default(false),
  /** Fan out over a list from another part: `cart.items[*].productId`; `{item}` is each element. */
  forEach: z.string().optional(),
  /** Most elements a fan-out may have (default: the aggregate's). */
  maxFanOut: z.number().int().positive().optional(),
  /** Fan-out calls in flight at once (default: the aggregate's). */
  concurrency: z.number().int().positive().optional(),
  /** Cache successful answers, keyed by service, method, resolved URL and the headers sent. */
  cache: z
    .strictObject({
      ttl: duration(),
      /** `memory` (this process), a name from the file's `stores:`, or a redis:// URL (shared). */
      store: z.string().min(1).default('memory'),
      /** Memory store: most bytes kept; the least recently used go first. */
      maxSize: size().default(8 * 1024 * 1024),
    })
    .optional(),
  /** Largest response body accepted from this part. */
  maxBodySize: size().default(1024 * 1024),
  /** Use only this member of the response (`data`). */
  target: z.string().optional(),
  ...shaping,
  /** Place the result under this dot path (default: the part's name). */
  group: z.string().optional(),
  /** Place the result's members side by side at the top instead of under a key. */
  merge: z.boolean().default(false),
});

/** Options of a route's `aggregate:` handler. */
export const aggregateSchema = z
  .strictObject({
    /** The named calls. */
    parts: z.record(z.string(), partSchema),
    /** Allow one non-safe part (POST, PUT, PATCH, DELETE), run last, after every other part. */
    allowUnsafe: z.boolean().default(false),
    /** Default deadline of each part. */
    partTimeout: duration().default(10_000),
    /** Default most elements of a fan-out. */
    maxFanOut: z.number().int().positive().default(50),
    /** Default fan-out calls in flight at once. */
    concurrency: z.number().int().positive().default(8),
    /** Largest client request body buffered for `forwardBody`. */
    maxRequestBody: size().default(1024 * 1024),
    /** Final shaping of the composed response. */
    shape: z.strictObject(shaping).optional(),
    /**
     * How long an incomplete answer (`trellis-completed: false`) may be cached: 0 (the default)
     * sends `cache-control: no-store`; a short lifetime sends `max-age=N`. Applies whatever the
     * route's middlewares set, so a degraded page is never kept like a whole one.
     */
    incompleteMaxAge: duration().default(0),
  })
  .superRefine((options, ctx) => {
    for (const issue of compilePlan(options).issues) {
      ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    }
  });

export type AggregateOptions = z.output<typeof aggregateSchema>;
export type PartOptions = z.output<typeof partSchema>;
