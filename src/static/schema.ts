import { z } from 'zod';
import { duration, size } from '../core/units.js';

const prefix = z.string().regex(/^\/[^?#]*$/, 'a prefix starts with / and has no ? or #');

/** `static:` options, as written on a route. */
export const staticOptionsSchema = z.strictObject({
  /** A folder (relative to the configuration file) or `s3://bucket/prefix` of a published site. */
  root: z.string().min(1),
  /** Remove this prefix from the path before looking in `root` (a route on `/assets/*`). */
  stripPrefix: prefix.optional(),
  /** Files tried for a path ending in `/`; `[]` for none. */
  index: z.array(z.string().min(1)).default(['index.html']),
  /** Answer `/index.html` for a missing path without an extension (client-side routing). */
  spa: z.boolean().default(false),
  /** Path prefixes that never get the SPA fallback (an API under the same host answers 404 as itself). */
  spaExclude: z.array(prefix).default(['/api']),
  /** Candidates tried in order, like Caddy's try_files: `{path}` is the request path, e.g. `[{path}, {path}.html]`. */
  try: z.array(z.string().min(1)).optional(),
  /** Serve files and folders whose name starts with a dot (`.well-known` always is). */
  dotfiles: z.boolean().default(false),
  /** Follow symlinks that lead outside the root (refused by default). */
  followSymlinks: z.boolean().default(false),
  /** Cache-Control by path pattern, first match wins; hashed assets default to immutable, the rest to no-cache. */
  cacheControl: z.array(z.strictObject({ match: z.string().min(1), value: z.string().min(1) })).default([]),
  /** Serve `file.br` / `file.gz` when the client accepts them and they match their source. */
  precompressed: z.boolean().default(true),
  /** How long a file's metadata is trusted before the source is checked again for changes. */
  revalidate: duration().default(1000),
  /** The in-memory cache of small files' bytes. */
  memoryCache: z
    .strictObject({
      /** Total bytes held; 0 turns the cache off. */
      maxBytes: size().default(64 * 1024 * 1024),
      /** Largest file held (larger ones stream from the source). */
      maxFileSize: size().default(1024 * 1024),
    })
    .prefault({}),
  /** Most files whose metadata (stat, hash, variants) is kept. */
  maxEntries: z.number().int().min(16).default(10_000),
  /** Most open file descriptors kept for streaming large files. */
  maxOpenFiles: z.number().int().min(1).default(256),
  /** Most ranges in one Range header; more are refused with 416 before parsing. */
  maxRanges: z.number().int().min(1).max(100).default(16),
  /** For `s3://` roots: endpoint, region and path-style addressing (defaults from AWS_* variables). */
  s3: z
    .strictObject({
      endpoint: z.string().url().optional(),
      region: z.string().optional(),
      forcePathStyle: z.boolean().optional(),
    })
    .optional(),
});

export type StaticOptions = z.output<typeof staticOptionsSchema>;
