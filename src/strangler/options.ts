import { z } from 'zod';
import { duration, size } from '../core/units.js';
import { MODES } from './state.js';

/**
 * The `strangler:` handler's options, as written on a route. The mode and weight here are the
 * file's defaults: the live migration state (MigrationState, changed by `trellis strangler set`,
 * the admin API or a guard step back) overrides them on every instance.
 */

/** Which request value keeps a client on one side of a canary. */
export const stickySchema = z
  .union([
    z.literal('ip'),
    z.strictObject({ header: z.string().min(1) }),
    z.strictObject({ cookie: z.string().min(1) }),
    z.strictObject({ jwtClaim: z.string().min(1) }),
  ])
  .default('ip');
export type StickyKey = z.output<typeof stickySchema>;

export const stranglerSchema = z.strictObject({
  /** The service being replaced. */
  legacy: z.string().min(1),
  /** The service replacing it. */
  modern: z.string().min(1),
  /** The file's mode, used until the migration state says otherwise. */
  mode: z.enum(MODES).default('legacy'),
  /** Per cent of keys on the modern side in canary mode (the file's default). */
  weight: z.number().min(0).max(100).default(0),
  /** In modern mode, copy requests to legacy and compare (the file's default). */
  reverseShadow: z.boolean().default(false),
  sticky: stickySchema,
  /** Where the migration state lives: a name from `stores:`, or a URL. Default: SQLite beside the file. */
  store: z.string().min(1).optional(),
  /** Key prefix of the state in the store (two gateways on one store must share it to agree). */
  statePrefix: z.string().min(1).default('trellis/strangler/'),
  /** Shadow copies. */
  shadow: z
    .strictObject({
      /** The copy's own deadline; past it the copy is abandoned (the primary never waits). */
      timeout: duration().default(2000),
      /** Copies in flight at most. */
      concurrency: z.number().int().min(1).max(10_000).default(64),
      /** Copies waiting for a slot at most; beyond, a copy is dropped and counted. */
      queue: z.number().int().min(0).max(100_000).default(256),
      /** Largest request body teed to the copy (larger: the copy is skipped, the primary streams on). */
      maxBodySize: size().default(1024 * 1024),
      /** Largest answer body (each side) read for the comparison; larger ones compare status and headers only. */
      maxResponseSize: size().default(1024 * 1024),
      /**
       * Share of eligible requests copied (1: every one). The others are forwarded as in legacy
       * mode, with no tee, no capture and no comparison: the way to bound the shadow side's CPU
       * on a busy route, at the price of fewer samples.
       */
      sample: z.number().min(0).max(1).default(1),
      /** Copy POST, PUT, PATCH, DELETE too (only when the other side is safe to call twice). */
      unsafe: z.boolean().default(false),
    })
    .prefault({}),
  /** Copy unsafe methods to the other side (same as `shadow.unsafe`). */
  shadowUnsafe: z.boolean().optional(),
  /** What the comparison leaves out and looks at. */
  diff: z
    .strictObject({
      /** JSON paths never compared (`meta`, `items[*].updatedAt`). */
      ignore: z.array(z.string().min(1)).default([]),
      /** Headers compared (by default only content-type). */
      headers: z.array(z.string().min(1)).default(['content-type']),
      /** Headers never compared. */
      ignoreHeaders: z.array(z.string().min(1)).default([]),
    })
    .prefault({}),
  /** Noise learning: the share of compared requests sent to legacy a second time. */
  noise: z.strictObject({ sample: z.number().min(0).max(1).default(0.1) }).optional(),
  /** Mismatches kept in memory for `trellis strangler report`. */
  mismatches: z
    .strictObject({
      /** Last N mismatches kept per route. */
      keep: z.number().int().min(0).max(10_000).default(100),
      /** Share of mismatches kept with their bodies (all are counted and tallied by field). */
      sample: z.number().min(0).max(1).default(0.1),
      /** JSON paths whose values are replaced by "[redacted]" in kept bodies. */
      redact: z.array(z.string().min(1)).default([]),
      /** Largest body kept per side (longer ones are cut). */
      maxBodySize: size().default(16 * 1024),
    })
    .prefault({}),
  /** Guard rails: step back automatically when the modern side misbehaves. */
  guard: z
    .strictObject({
      maxErrorRate: z.number().min(0).max(1).default(0.05),
      maxP99: duration().default(1000),
      minSamples: z.number().int().min(1).default(50),
      window: duration().default(60_000),
      /** false: judge and report only, never write a step back. */
      stepBack: z.boolean().default(true),
    })
    .optional(),
  /** Removed from the front of the path before forwarding (both sides), as `proxy:` does. */
  stripPrefix: z
    .string()
    .regex(/^\/[^?#]*$/, 'a prefix starts with / and has no ? or #')
    .optional(),
  /** Put in front of the path before forwarding. */
  addPrefix: z
    .string()
    .regex(/^\/[^?#]*$/, 'a prefix starts with / and has no ? or #')
    .optional(),
  /** A new path: `{name}` is a route parameter, `{*}` the wildcard's match. */
  rewrite: z.string().startsWith('/', 'a rewrite starts with /').optional(),
  /** Send the client's Host header to the primary (default) rather than the upstream's own. */
  preserveHost: z.boolean().default(true),
  /** The upstream answer deadline of the primary (default: the service's). */
  timeout: duration().optional(),
});

export type StranglerOptions = z.output<typeof stranglerSchema>;
